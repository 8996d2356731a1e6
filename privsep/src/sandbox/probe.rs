//! Escape attempts for the sandbox tests (feature `escape-probe`, enabled only
//! by the test package; no production binary calls any of this).
//!
//! Each function makes one raw attempt that the sandbox must refuse and
//! returns `Ok` only if the kernel let it through. They live here because
//! they need `unsafe` raw syscalls, which only this crate may contain.

use std::io;

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

/// Closes a descriptor a successful attempt produced.
fn close(fd: libc::c_long) {
    if let Ok(fd) = libc::c_int::try_from(fd) {
        // SAFETY: `fd` was just returned by the kernel to this function and is owned by nobody else.
        unsafe { libc::close(fd) };
    }
}

/// `io_uring_setup(1, &params)`.
pub fn io_uring_setup() -> io::Result<()> {
    let mut params = [0u8; 120];
    // SAFETY: `params` is a zeroed buffer the size of `struct io_uring_params`.
    let rc = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, params.as_mut_ptr()) };
    check(rc).map(close)
}

/// `bpf(BPF_MAP_CREATE)` of a tiny array map.
pub fn bpf_map_create() -> io::Result<()> {
    // map_type = BPF_MAP_TYPE_ARRAY (2), key_size 4, value_size 4, max_entries 1.
    let mut attr = [0u32; 30];
    attr[..4].copy_from_slice(&[2, 4, 4, 1]);
    // SAFETY: `attr` is a zeroed `union bpf_attr`-sized buffer, its size is passed.
    let rc =
        unsafe { libc::syscall(libc::SYS_bpf, 0, attr.as_mut_ptr(), std::mem::size_of_val(&attr)) };
    check(rc).map(close)
}

/// `userfaultfd(UFFD_USER_MODE_ONLY)` (allowed even with the sysctl at 0).
pub fn userfaultfd() -> io::Result<()> {
    const UFFD_USER_MODE_ONLY: libc::c_long = 1;
    // SAFETY: integer flags only.
    let rc = unsafe {
        libc::syscall(libc::SYS_userfaultfd, UFFD_USER_MODE_ONLY | libc::O_CLOEXEC as libc::c_long)
    };
    check(rc).map(close)
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)`.
pub fn keyctl_join_session() -> io::Result<()> {
    // SAFETY: a NULL name asks for an anonymous keyring; no memory is read.
    let rc = unsafe { libc::syscall(libc::SYS_keyctl, 1, std::ptr::null::<u8>()) };
    check(rc).map(drop)
}

/// `add_key("user", "probe", "x", 1, KEY_SPEC_PROCESS_KEYRING)`.
pub fn add_key() -> io::Result<()> {
    let (kind, desc, data) = (c"user", c"probe", b"x");
    // SAFETY: NUL-terminated strings and a 1-byte payload that outlive the call.
    let rc = unsafe {
        libc::syscall(libc::SYS_add_key, kind.as_ptr(), desc.as_ptr(), data.as_ptr(), 1usize, -2i32)
    };
    check(rc).map(drop)
}

/// `perf_event_open` of a user-space-only software clock on this process.
pub fn perf_event_open() -> io::Result<()> {
    // type = PERF_TYPE_SOFTWARE (1), size = 128, config = CPU_CLOCK (0), exclude_kernel|hv.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes());
    attr[4..8].copy_from_slice(&128u32.to_ne_bytes());
    attr[40..48].copy_from_slice(&((1u64 << 5) | (1u64 << 6)).to_ne_bytes());
    // SAFETY: `attr` is a `struct perf_event_attr` of the size it declares.
    let rc = unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 0) };
    check(rc).map(close)
}

/// `personality(READ_IMPLIES_EXEC)`; success means the persona changed.
pub fn personality() -> io::Result<()> {
    const READ_IMPLIES_EXEC: libc::c_ulong = 0x0040_0000;
    // SAFETY: integer argument only.
    let rc = unsafe { libc::personality(READ_IMPLIES_EXEC) };
    check(libc::c_long::from(rc)).map(drop)
}

/// `memfd_create`, then `execveat(fd, "", AT_EMPTY_PATH)` of `elf` with `argv`.
pub fn memfd_exec(elf: &[u8], argv: &[&std::ffi::CStr]) -> io::Result<()> {
    // SAFETY: a NUL-terminated name; the flags are integers.
    let fd = check(unsafe { libc::syscall(libc::SYS_memfd_create, c"x".as_ptr(), 0) })?;
    let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: `elf` is a valid buffer of the given length.
    let written = unsafe { libc::write(fd, elf.as_ptr().cast(), elf.len()) };
    check(written as libc::c_long)?;
    let mut args: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    args.push(std::ptr::null());
    let envp = [std::ptr::null::<libc::c_char>()];
    // SAFETY: argv and envp are NULL-terminated arrays of NUL-terminated
    // strings that outlive the call; on success the process image is replaced.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            c"".as_ptr(),
            args.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    check(rc).map(drop)
}

/// `connect(fd, AF_UNSPEC)`: dissolves the association of a connected socket.
pub fn disconnect(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed sockaddr_storage with family AF_UNSPEC, its size passed.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    addr.ss_family = libc::AF_UNSPEC as libc::sa_family_t;
    let len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `addr` is valid for `len` bytes and outlives the call.
    let rc = unsafe { libc::connect(fd.as_raw_fd(), (&raw const addr).cast(), len) };
    check(libc::c_long::from(rc)).map(drop)
}

/// `fork()`; the child exits at once. Success means a new process existed.
pub fn fork() -> io::Result<()> {
    // SAFETY: the child calls only `_exit`, which is async-signal-safe.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: terminating the forked child immediately.
        unsafe { libc::_exit(0) };
    }
    check(libc::c_long::from(pid)).map(drop)
}

/// `ptrace(PTRACE_ATTACH, pid)`; detaches again on success.
pub fn ptrace_attach(pid: i32) -> io::Result<()> {
    // SAFETY: PTRACE_ATTACH takes no pointers.
    let rc = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) };
    check(rc).map(|_| {
        // SAFETY: as above.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
    })
}

/// `process_vm_readv` of 8 bytes at the start of `pid`'s stack-less text: any readable address works.
pub fn process_vm_read(pid: i32, addr: usize) -> io::Result<()> {
    let mut buf = [0u8; 8];
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: buf.len() };
    // SAFETY: `local` points at our own buffer; `remote` is only read by the
    // kernel in the other process, which validates it.
    let rc = unsafe { libc::process_vm_readv(pid, &raw const local, 1, &raw const remote, 1, 0) };
    check(rc as libc::c_long).map(drop)
}

/// `chroot(path)`.
pub fn chroot(path: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: a NUL-terminated path.
    check(libc::c_long::from(unsafe { libc::chroot(path.as_ptr()) })).map(drop)
}
