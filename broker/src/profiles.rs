//! The sandbox profile of each child, built from the validated config.
//!
//! The escape tests build their probes' sandboxes with these same functions,
//! so what is tested is exactly what the broker hands out.

use privsep::sandbox::Profile;

use crate::config::{App, Config};

/// The gateway's profile.
pub fn gateway(_config: &Config) -> Profile {
    Profile::default()
}

/// The profile of a worker of `app`.
pub fn worker(_config: &Config, _app: &App) -> Profile {
    Profile::default()
}
