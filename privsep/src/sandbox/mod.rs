//! Sandbox profiles: what a child may see and do, applied by the child itself.
//!
//! The broker builds a [`Profile`] for each child and sends it in the child's
//! `Init`; the child applies it before it reads a byte of client input:
//! [`enter`] while still single-threaded (namespaces and mounts, rlimits,
//! identity and capabilities, no_new_privs, Landlock), then builds its
//! runtime, then [`lock`] (seccomp, synchronised to every thread).

use serde::{Deserialize, Serialize};

/// Everything a child's sandbox consists of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {}

/// Why a sandbox could not be applied. A child that gets one must exit.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {}

/// Stage one, before any thread exists.
pub fn enter(_profile: &Profile) -> Result<(), SandboxError> {
    Ok(())
}

/// Stage two, once the runtime's threads exist.
pub fn lock(_profile: &Profile) -> Result<(), SandboxError> {
    Ok(())
}
