//! VPP binary API messages.
