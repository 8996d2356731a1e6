//! What another process of the same user can take from a process, and the
//! means to take it away: the dumpable flag (which gates `/proc/PID/mem`,
//! `environ`, `ptrace` for same-uid processes) and the original environment
//! block on the initial stack, which `/proc/PID/environ` shows whatever
//! `remove_var` did since.
//!
//! The broker calls [`set_undumpable`] first thing and [`scrub_env`] once its
//! `{ env = … }` secrets are read; `bulkhead audit` checks both from outside
//! (the flag of a process that is not root with [`dump_owner_is_root`]).

use std::io;
use std::os::unix::fs::MetadataExt;

/// Fields of `/proc/self/stat` after the command name: `env_start` is field
/// 50 of proc(5) counted from 1, the state (field 3) is the first after `)`.
const ENV_START_FIELD: usize = 50 - 3;

/// `prctl(PR_SET_DUMPABLE, 0)`: from now on no process of this uid without
/// `CAP_SYS_PTRACE` can read this one's memory or environment, nor trace it,
/// and it leaves no core dump.
pub fn set_undumpable() -> io::Result<()> {
    nix::sys::prctl::set_dumpable(false).map_err(io::Error::from)
}

/// Whether this process is dumpable (`PR_GET_DUMPABLE`).
pub fn is_dumpable() -> io::Result<bool> {
    nix::sys::prctl::get_dumpable().map_err(io::Error::from)
}

/// Removes each of `names` from the environment and overwrites its value in
/// the original environment block with zeros, so `/proc/self/environ` shows
/// `NAME=` followed by NULs. Returns how many values were overwritten.
///
/// Refuses unless this process has a single thread: changing the environment
/// while another thread may read it is undefined behaviour.
pub fn scrub_env(names: &[&str]) -> io::Result<usize> {
    let threads = std::fs::read_dir("/proc/self/task")?.count();
    if threads != 1 {
        return Err(io::Error::other(format!(
            "{threads} threads run; scrub the environment first"
        )));
    }
    let (start, end) = env_block()?;
    let mut overwritten = 0;
    for name in names {
        for range in value_ranges(block(start, end), name) {
            // SAFETY: `start..end` is the environment block the kernel placed on the
            // initial stack at exec (`/proc/self/stat` says where), mapped readable and
            // writable for the life of the process; `range` lies inside it. No Rust
            // reference to it exists (the one from `block` has ended), and the only other
            // pointers, libc's `environ` entries, are not read meanwhile: this process has
            // one thread.
            unsafe { std::ptr::write_bytes((start + range.start) as *mut u8, 0, range.len()) };
            overwritten += 1;
        }
        // SAFETY: single-threaded (checked above), so no other thread reads the
        // environment while it changes.
        unsafe { std::env::remove_var(name) };
    }
    Ok(overwritten)
}

/// The environment block as bytes.
fn block<'a>(start: usize, end: usize) -> &'a [u8] {
    // SAFETY: as in `scrub_env`: the kernel's environment block, mapped for the
    // life of the process; the slice is only read, and only until the next write.
    unsafe { std::slice::from_raw_parts(start as *const u8, end - start) }
}

/// `env_start` and `env_end` of this process, from `/proc/self/stat`.
fn env_block() -> io::Result<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let bad = || io::Error::other("unexpected /proc/self/stat");
    let after_comm = stat.rsplit_once(')').ok_or_else(bad)?.1;
    let mut fields = after_comm.split_whitespace().skip(ENV_START_FIELD);
    let mut next = || fields.next().and_then(|f| f.parse::<usize>().ok()).ok_or_else(bad);
    let (start, end) = (next()?, next()?);
    if start == 0 || end < start {
        return Err(bad());
    }
    Ok((start, end))
}

/// The byte ranges of the values of `name` in a NUL-separated `NAME=value` block.
fn value_ranges(block: &[u8], name: &str) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut offset = 0;
    for entry in block.split(|&b| b == 0) {
        let value_at = name.len() + 1;
        if entry.len() >= value_at
            && entry.starts_with(name.as_bytes())
            && entry[name.len()] == b'='
        {
            ranges.push(offset + value_at..offset + entry.len());
        }
        offset += entry.len() + 1;
    }
    ranges
}

/// Whether the files in `/proc/PID` (`status`, `environ`, `mem`) belong to
/// root although the process does not run as root: the kernel does that
/// exactly for a non-dumpable process (the `/proc/PID` directory itself keeps
/// the process's uid).
pub fn dump_owner_is_root(pid: u32) -> io::Result<bool> {
    Ok(std::fs::metadata(format!("/proc/{pid}/status"))?.uid() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_ranges_find_exact_names_only() {
        let block = b"A=1\0DB=secret\0DBX=no\0DB=\0";
        let ranges = value_ranges(block, "DB");
        assert_eq!(ranges, [7..13, 24..24]);
        assert_eq!(&block[7..13], b"secret");
        assert!(value_ranges(block, "D").is_empty());
    }

    #[test]
    fn this_process_has_an_environment_block() {
        let (start, end) = env_block().expect("env_start and env_end");
        assert!(end >= start);
    }
}
