//! rvpp devices.
