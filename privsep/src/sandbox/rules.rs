//! The Landlock ruleset: deny every file system and TCP right except what the
//! profile grants, and scope abstract Unix sockets and signals to the child.
//!
//! Landlock binds the calling thread and what it creates later (ABI < 8), so
//! this runs while the process is single-threaded. Execution is granted only
//! on the profile's `execute` paths (a pool's php-fpm binary and its loader);
//! for every other child mounts are `noexec` and seccomp forbids `execve`, and
//! Landlock adds a third wall.

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};

use super::{Landlock, SandboxError};

/// Applies `rules`; with `best_effort`, rights the kernel lacks are dropped instead of failing.
pub(super) fn restrict_self(rules: &Landlock, best_effort: bool) -> Result<(), SandboxError> {
    let abi = abi(rules.min_abi);
    let level = if best_effort { CompatLevel::BestEffort } else { CompatLevel::HardRequirement };
    let err = |e: &dyn std::fmt::Display| SandboxError::Landlock(e.to_string());
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let write = AccessFs::from_all(abi) & !AccessFs::Execute;
    let mut created = Ruleset::default()
        .set_compatibility(level)
        .handle_access(AccessFs::from_all(abi))
        .map_err(|e| err(&e))?
        .handle_access(AccessNet::from_all(abi))
        .map_err(|e| err(&e))?
        .scope(Scope::from_all(abi))
        .map_err(|e| err(&e))?
        .create()
        .map_err(|e| err(&e))?
        .add_rules(path_beneath_rules(&rules.read, read))
        .map_err(|e| err(&e))?
        .add_rules(path_beneath_rules(&rules.write, write))
        .map_err(|e| err(&e))?
        .add_rules(path_beneath_rules(&rules.execute, read | AccessFs::Execute))
        .map_err(|e| err(&e))?;
    for port in &rules.connect_tcp {
        created =
            created.add_rule(NetPort::new(*port, AccessNet::ConnectTcp)).map_err(|e| err(&e))?;
    }
    let status = created.restrict_self().map_err(|e| err(&e))?;
    if !best_effort && status.ruleset != RulesetStatus::FullyEnforced {
        return Err(SandboxError::Landlock(format!("not fully enforced: {:?}", status.ruleset)));
    }
    Ok(())
}

/// The crate's ABI value for a number (unknown numbers pin the newest tested one).
fn abi(n: u8) -> ABI {
    match n {
        0 | 1 => ABI::V1,
        2 => ABI::V2,
        3 => ABI::V3,
        4 => ABI::V4,
        5 => ABI::V5,
        6 => ABI::V6,
        _ => ABI::V7,
    }
}
