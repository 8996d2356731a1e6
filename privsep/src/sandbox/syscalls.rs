//! The seccomp filters, installed on every thread at once (TSYNC).
//!
//! Filters are stacked; the kernel returns the strongest verdict of all:
//! 1. `clone3` fails with ENOSYS (its flags live in memory and cannot be
//!    inspected; glibc then falls back to `clone`, whose flags can);
//! 2. `open`/`openat` fail with EACCES when the profile opens no files (glibc
//!    opens `/proc` files lazily from any thread; that must not kill);
//! 3. `ioctl` other than FIONBIO/FIOCLEX fails with ENOTTY (isatty probes);
//! 4. last, the allow-list: anything not on it kills the whole process. It
//!    does not allow `seccomp` itself, so nothing can be installed after it.
//!
//! A program host (php-fpm) gets a deny-list instead ([`DENIED_TO_PROGRAMS`]), behind a
//! filter refusing every x32 syscall number, with `socket` limited to Unix and TCP sockets
//! and `listen` refused.
//!
//! Never on the list: `execve*`, `memfd_create`, `fork`/`vfork`, `clone`
//! without CLONE_THREAD or with CLONE_NEW*, `ptrace`, `process_vm_*`,
//! `unshare`, `setns`, `mount` and friends, `chroot`, `io_uring_*`, `bpf`,
//! `userfaultfd`, `keyctl`/`add_key`, `perf_event_open`, `personality`,
//! `kill`, `bind`, `listen`; `socket` and `connect` only when the profile
//! names socket domains, `socket` only for stream sockets of those domains.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use super::{SandboxError, Seccomp, SocketDomain};

type Rules = BTreeMap<i64, Vec<SeccompRule>>;

/// The socket type bits of `socket()`'s second argument (the rest are SOCK_NONBLOCK/CLOEXEC).
const SOCK_TYPE_MASK: u64 = 0xf;
/// `CLONE_NEW*` flags (and CLONE_NEWTIME, 0x80): never allowed in `clone`.
const CLONE_NAMESPACES: u64 = 0x7E02_0080;

/// Builds and installs the filters for `policy` on every thread.
pub(super) fn install(policy: &Seccomp) -> Result<(), SandboxError> {
    for program in programs(policy)? {
        seccompiler::apply_filter_all_threads(&program)
            .map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    }
    Ok(())
}

/// Installs, for a program host that may run no program, a filter killing
/// every `execve` whose file name is not at `filename` (the launcher's own
/// pointer to php-fpm's path, valid in no later address space), on every thread.
pub(super) fn install_exec_once(filename: u64) -> Result<(), SandboxError> {
    let other = rule(vec![cond(0, Len::Qword, Op::Ne, filename)?])?;
    let rules = Rules::from([(libc::SYS_execve, vec![other])]);
    let program = filter(rules, SeccompAction::Allow, SeccompAction::KillProcess)?;
    seccompiler::apply_filter_all_threads(&program)
        .map_err(|e| SandboxError::Seccomp(e.to_string()))
}

/// The programs in installation order (the allow-list last).
fn programs(policy: &Seccomp) -> Result<Vec<BpfProgram>, SandboxError> {
    if policy.deny_list {
        let mut denied = namespace_clones()?;
        denied.extend(program_sockets()?);
        let mut programs = vec![
            errno_filter(&[libc::SYS_clone3], libc::ENOSYS, Rules::new())?,
            errno_filter(DENIED_TO_PROGRAMS, libc::EPERM, denied)?,
        ];
        #[cfg(target_arch = "x86_64")]
        programs.insert(0, no_x32());
        return Ok(programs);
    }
    let mut soft_opens = vec![];
    #[cfg(target_arch = "x86_64")]
    soft_opens.push(libc::SYS_open);
    if !policy.files {
        soft_opens.push(libc::SYS_openat);
    }
    let filters = [
        errno_filter(&[libc::SYS_clone3], libc::ENOSYS, Rules::new())?,
        errno_filter(&soft_opens, libc::EACCES, Rules::new())?,
        errno_filter(&[], libc::ENOTTY, ioctl_denials()?)?,
        filter(allow_list(policy)?, SeccompAction::KillProcess, SeccompAction::Allow)?,
    ];
    Ok(filters.into())
}

fn arch() -> Result<TargetArch, SandboxError> {
    std::env::consts::ARCH.try_into().map_err(|e: seccompiler::BackendError| seccomp_err(&e))
}

fn seccomp_err(e: &dyn std::fmt::Display) -> SandboxError {
    SandboxError::Seccomp(e.to_string())
}

fn filter(
    rules: Rules,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, SandboxError> {
    let filter =
        SeccompFilter::new(rules, mismatch, matched, arch()?).map_err(|e| seccomp_err(&e))?;
    filter.try_into().map_err(|e: seccompiler::BackendError| seccomp_err(&e))
}

/// Makes `syscalls` (unconditionally) and `extra` (by their rules) fail with `errno`.
fn errno_filter(
    syscalls: &[i64],
    errno: i32,
    mut extra: Rules,
) -> Result<BpfProgram, SandboxError> {
    for nr in syscalls {
        extra.insert(*nr, vec![]);
    }
    let errno = u32::try_from(errno).unwrap_or(1);
    filter(extra, SeccompAction::Allow, SeccompAction::Errno(errno))
}

fn cond(arg: u8, len: Len, op: Op, value: u64) -> Result<SeccompCondition, SandboxError> {
    SeccompCondition::new(arg, len, op, value).map_err(|e| seccomp_err(&e))
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, SandboxError> {
    SeccompRule::new(conditions).map_err(|e| seccomp_err(&e))
}

/// One rule per allowed value of a 32-bit argument.
fn any_of(arg: u8, values: &[u64]) -> Result<Vec<SeccompRule>, SandboxError> {
    values.iter().map(|v| rule(vec![cond(arg, Len::Dword, Op::Eq, *v)?])).collect()
}

fn ioctl_denials() -> Result<Rules, SandboxError> {
    let not = |v: u64| cond(1, Len::Dword, Op::Ne, v);
    let fionbio = u64::from(libc::FIONBIO as u32);
    let fioclex = u64::from(libc::FIOCLEX as u32);
    Ok(Rules::from([(libc::SYS_ioctl, vec![rule(vec![not(fionbio)?, not(fioclex)?])?])]))
}

/// What a program host (php-fpm) is refused: debugging and reading other
/// processes, kernel attack surface no web application needs, and every way
/// to change the file system view, the namespaces or the kernel's state.
const DENIED_TO_PROGRAMS: &[i64] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_process_madvise,
    libc::SYS_pidfd_getfd,
    libc::SYS_kcmp,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_userfaultfd,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_memfd_create,
    libc::SYS_memfd_secret,
    libc::SYS_execveat,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_personality,
    libc::SYS_fanotify_init,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_syslog,
    libc::SYS_vhangup,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_mbind,
    libc::SYS_migrate_pages,
    libc::SYS_move_pages,
    libc::SYS_set_mempolicy,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_uselib,
];

/// The x32 ABI's syscall numbers (bit 30 set) under the x86-64 audit arch: a deny-list
/// keyed by x86-64 numbers would let every one of them through (`unshare` as
/// `0x40000000 | 272`), so a program host gets EPERM for all of them. Allow-lists are not
/// concerned: they kill what they do not name.
#[cfg(target_arch = "x86_64")]
fn no_x32() -> BpfProgram {
    use seccompiler::sock_filter;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    let eperm = u32::try_from(libc::EPERM).unwrap_or(1);
    let op = |code: u32, jt: u8, jf: u8, k: u32| sock_filter {
        code: u16::try_from(code).unwrap_or(0),
        jt,
        jf,
        k,
    };
    vec![
        // A = seccomp_data.nr
        op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0),
        // if A >= X32_SYSCALL_BIT: EPERM, else allow (the later filters decide).
        op(libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K, 0, 1, X32_SYSCALL_BIT),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, SECCOMP_RET_ERRNO | eperm),
        op(libc::BPF_RET | libc::BPF_K, 0, 0, SECCOMP_RET_ALLOW),
    ]
}

/// The sockets a program host may open: Unix ones of any type, and TCP (stream
/// sockets of AF_INET/AF_INET6), which Landlock then pins to the declared ports. No UDP,
/// raw, packet or netlink socket (Landlock has no rules for them), and no `listen`: php-fpm
/// inherits its listening socket, and a listen on an unbound socket would bind a port
/// Landlock never sees.
fn program_sockets() -> Result<Rules, SandboxError> {
    let domain =
        |op: Op, family: i32| cond(0, Len::Dword, op, u64::try_from(family).unwrap_or(u64::MAX));
    let mut socket = vec![rule(vec![
        domain(Op::Ne, libc::AF_UNIX)?,
        domain(Op::Ne, libc::AF_INET)?,
        domain(Op::Ne, libc::AF_INET6)?,
    ])?];
    let stream = u64::try_from(libc::SOCK_STREAM).unwrap_or(1);
    for family in [libc::AF_INET, libc::AF_INET6] {
        for kind in (0..=SOCK_TYPE_MASK).filter(|t| *t != stream) {
            socket.push(rule(vec![
                domain(Op::Eq, family)?,
                cond(1, Len::Dword, Op::MaskedEq(SOCK_TYPE_MASK), kind)?,
            ])?);
        }
    }
    Ok(Rules::from([(libc::SYS_socket, socket), (libc::SYS_listen, vec![])]))
}

/// `clone` (and `vfork`-like forks) that would create a namespace.
fn namespace_clones() -> Result<Rules, SandboxError> {
    // One rule per namespace bit: any of them set matches, and is denied.
    let bits = (0..64).map(|b| 1u64 << b).filter(|b| CLONE_NAMESPACES & b != 0);
    let rules = bits
        .map(|bit| rule(vec![cond(0, Len::Qword, Op::MaskedEq(bit), bit)?]))
        .collect::<Result<_, _>>()?;
    Ok(Rules::from([(libc::SYS_clone, rules)]))
}

/// Syscalls every child needs once its tokio runtime runs, allowed regardless of arguments.
const RUNTIME: &[i64] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_recvfrom,
    libc::SYS_sendto,
    libc::SYS_recvmsg,
    libc::SYS_sendmsg,
    libc::SYS_close,
    libc::SYS_shutdown,
    libc::SYS_futex,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_ctl,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_yield,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_munmap,
    libc::SYS_madvise,
    libc::SYS_mremap,
    libc::SYS_brk,
    libc::SYS_sigaltstack,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigreturn,
    libc::SYS_getrandom,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_clone3,
    libc::SYS_ioctl,
    libc::SYS_openat,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_gettimeofday,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_ppoll,
    libc::SYS_restart_syscall,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_epoll_wait,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_open,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_poll,
];

/// Looking at files the mount view and Landlock allow (workers).
const FILES: &[i64] = &[
    libc::SYS_newfstatat,
    libc::SYS_fstat,
    libc::SYS_statx,
    libc::SYS_lseek,
    libc::SYS_pread64,
    libc::SYS_readlinkat,
    libc::SYS_getdents64,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_readlink,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_stat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_lstat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_access,
];

fn allow_list(policy: &Seccomp) -> Result<Rules, SandboxError> {
    let mut rules: Rules = RUNTIME.iter().map(|nr| (*nr, vec![])).collect();
    if policy.files {
        rules.extend(FILES.iter().map(|nr| (*nr, vec![])));
    }
    if policy.accept {
        rules.insert(libc::SYS_accept4, vec![]);
    }
    if !policy.socket_domains.is_empty() {
        let stream = |d: &SocketDomain| {
            let kind = u64::try_from(libc::SOCK_STREAM).unwrap_or_default();
            rule(vec![
                cond(0, Len::Dword, Op::Eq, domain(*d))?,
                cond(1, Len::Dword, Op::MaskedEq(SOCK_TYPE_MASK), kind)?,
            ])
        };
        let streams = policy.socket_domains.iter().map(stream).collect::<Result<_, _>>()?;
        rules.insert(libc::SYS_socket, streams);
        rules.insert(libc::SYS_connect, vec![]);
    }
    let no_exec = |arg| rule(vec![cond(arg, Len::Dword, Op::MaskedEq(libc::PROT_EXEC as u64), 0)?]);
    rules.insert(libc::SYS_mmap, vec![no_exec(2)?]);
    rules.insert(libc::SYS_mprotect, vec![no_exec(2)?]);
    let thread = u64::try_from(libc::CLONE_THREAD).unwrap_or_default();
    rules.insert(
        libc::SYS_clone,
        vec![rule(vec![
            cond(0, Len::Qword, Op::MaskedEq(thread), thread)?,
            cond(0, Len::Qword, Op::MaskedEq(CLONE_NAMESPACES), 0)?,
        ])?],
    );
    let names = [libc::PR_SET_NAME, libc::PR_GET_NAME].map(|o| o as u64);
    rules.insert(libc::SYS_prctl, any_of(0, &names)?);
    let fcntl = [libc::F_GETFL, libc::F_SETFL, libc::F_GETFD, libc::F_SETFD, libc::F_DUPFD_CLOEXEC];
    rules.insert(libc::SYS_fcntl, any_of(1, &fcntl.map(|c| c as u64))?);
    let own = u64::from(std::process::id());
    rules.insert(libc::SYS_tgkill, any_of(0, &[own])?);
    Ok(rules)
}

fn domain(d: SocketDomain) -> u64 {
    let family = match d {
        SocketDomain::Unix => libc::AF_UNIX,
        SocketDomain::Inet => libc::AF_INET,
        SocketDomain::Inet6 => libc::AF_INET6,
    };
    u64::try_from(family).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_compiles_below_the_bpf_limit() {
        let worker = Seccomp {
            accept: false,
            files: true,
            socket_domains: vec![SocketDomain::Unix, SocketDomain::Inet],
            deny_list: false,
        };
        let pool = Seccomp { deny_list: true, ..Seccomp::default() };
        let expected = if cfg!(target_arch = "x86_64") { 3 } else { 2 };
        assert_eq!(programs(&pool).expect("compiles").len(), expected);
        for policy in [Seccomp { accept: true, ..Seccomp::default() }, worker] {
            let programs = programs(&policy).expect("compiles");
            assert_eq!(programs.len(), 4);
            assert!(programs.iter().all(|p| p.len() < 4096));
        }
    }
}
