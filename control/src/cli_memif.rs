//! CLI for memif interfaces: `create interface memif ...`, `create memif socket ...`,
//! `show memif`. (Being built.)

use crate::daemon::Dataplane;
use std::sync::Arc;

/// Handle a memif CLI line; None if the line is not a memif command.
pub fn execute(_dp: &Arc<Dataplane>, _words: &[&str]) -> Option<Result<String, String>> {
    None
}
