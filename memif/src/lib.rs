//! memif protocol crate.
