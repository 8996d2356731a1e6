//! What the running kernel offers, so the broker can refuse to start (or
//! knowingly start weaker) before any child depends on a missing feature.

use std::fmt;

/// The sandbox features of this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// The Landlock ABI version; 0 when Landlock is absent or disabled.
    pub landlock_abi: u8,
    /// Seccomp filter mode with the kill-process action.
    pub seccomp: bool,
    /// Whether this process may create user namespaces (sysctl limits only).
    pub user_namespaces: bool,
}

/// `LANDLOCK_CREATE_RULESET_VERSION`.
const LANDLOCK_VERSION: libc::c_uint = 1;

impl Features {
    /// Probes the kernel without changing anything about this process.
    pub fn detect() -> Self {
        Self {
            landlock_abi: landlock_abi(),
            seccomp: seccomp(),
            user_namespaces: user_namespaces(),
        }
    }
}

impl fmt::Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Landlock ABI {}, seccomp {}, user namespaces {}",
            self.landlock_abi,
            if self.seccomp { "yes" } else { "no" },
            if self.user_namespaces { "yes" } else { "no" },
        )
    }
}

fn landlock_abi() -> u8 {
    // SAFETY: with a NULL attribute pointer and size 0, the VERSION flag makes
    // the kernel return the ABI number and touch no memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_VERSION,
        )
    };
    u8::try_from(rc.max(0)).unwrap_or(u8::MAX)
}

fn seccomp() -> bool {
    let actions = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail");
    seccomp_supported() && actions.is_ok_and(|a| a.split_whitespace().any(|x| x == "kill_process"))
}

/// Whether the kernel has seccomp at all (needs no file system, unlike [`Features::detect`]).
pub fn seccomp_supported() -> bool {
    // SAFETY: PR_GET_SECCOMP takes no pointer arguments.
    let rc = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    rc >= 0
}

fn user_namespaces() -> bool {
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces");
    let allowed = max.is_ok_and(|m| m.trim().parse::<u64>().is_ok_and(|n| n > 0));
    let debian = std::fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone");
    let unprivileged = debian.map_or(true, |v| v.trim() != "0") || nix::unistd::geteuid().is_root();
    let apparmor =
        std::fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
    let restricted = apparmor.is_ok_and(|v| v.trim() == "1") && !nix::unistd::geteuid().is_root();
    allowed && unprivileged && !restricted
}
