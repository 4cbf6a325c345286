//! rvpp control surface.
