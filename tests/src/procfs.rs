//! Reads `/proc` to see the process tree and what each process exposes to anyone who can
//! read its `/proc` entries: command line, environment, executable.
//!
//! Read-only: nothing here signals or changes a process.

use std::fs;
use std::path::PathBuf;

/// A process id as `/proc` spells it.
pub type Pid = u32;

/// The fields of `/proc/PID/stat` the harness needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// One letter: `R`, `S`, `Z` (zombie), …
    pub state: char,
    /// The parent's pid.
    pub ppid: Pid,
}

/// Parses `/proc/PID/stat`; `None` once the process is gone.
pub fn stat(pid: Pid) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses the text of a stat file. The command name is in parentheses and may itself contain
/// spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let after_name = &text[text.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some(Stat { state, ppid })
}

/// Whether `pid` names a process that has not exited (a zombie counts as exited).
pub fn is_alive(pid: Pid) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z')
}

/// Every pid currently listed in `/proc`.
pub fn all_pids() -> Vec<Pid> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

/// The live direct children of `parent`.
pub fn children(parent: Pid) -> Vec<Pid> {
    let mut pids: Vec<Pid> = all_pids()
        .into_iter()
        .filter(|&pid| stat(pid).is_some_and(|s| s.ppid == parent && s.state != 'Z'))
        .collect();
    pids.sort_unstable();
    pids
}

/// The live children, grandchildren, … of `root` (not `root` itself).
pub fn descendants(root: Pid) -> Vec<Pid> {
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(pid) = frontier.pop() {
        for child in children(pid) {
            if !found.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

/// `/proc/PID/cmdline`: the arguments, NUL-separated. Empty if unreadable.
pub fn cmdline(pid: Pid) -> Vec<u8> {
    fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()
}

/// `/proc/PID/environ`: the initial environment, NUL-separated.
pub fn environ(pid: Pid) -> std::io::Result<Vec<u8>> {
    fs::read(format!("/proc/{pid}/environ"))
}

/// The executable's path, without the ` (deleted)` suffix the kernel adds after a rebuild.
pub fn exe(pid: Pid) -> Option<PathBuf> {
    let target = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let text = target.to_string_lossy();
    Some(PathBuf::from(text.trim_end_matches(" (deleted)")))
}

/// The file name of the executable, e.g. `bulkhead-gateway`.
pub fn exe_name(pid: Pid) -> Option<String> {
    Some(exe(pid)?.file_name()?.to_string_lossy().into_owned())
}

/// Read plus write syscalls so far (`syscr + syscw` of `/proc/PID/io`); 0 if unreadable.
pub fn syscalls(pid: Pid) -> u64 {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/io")) else {
        return 0;
    };
    text.lines()
        .filter_map(|line| line.split_once(": "))
        .filter(|(key, _)| *key == "syscr" || *key == "syscw")
        .filter_map(|(_, value)| value.trim().parse::<u64>().ok())
        .sum()
}

/// Waits up to `timeout` for `pid` to exit; whether it did.
pub fn poll_gone(pid: Pid, timeout: std::time::Duration) -> bool {
    crate::net::poll_until(timeout, || (!is_alive(pid)).then_some(())).is_some()
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|window| window == needle)
}

/// How many times `needle` occurs in the readable memory of `pid`
/// (`/proc/PID/maps` + `/proc/PID/mem`); fails if nothing could be read.
pub fn memory_occurrences(pid: Pid, needle: &[u8]) -> usize {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("reading maps");
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("opening /proc/PID/mem");
    let (mut hits, mut scanned) = (0, 0);
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else { continue };
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vvar_vclock]") {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        else {
            continue;
        };
        let mut buf = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        hits += buf.windows(needle.len()).filter(|w| *w == needle).count();
        scanned += buf.len();
    }
    assert!(scanned > 0, "could not read any memory of process {pid}");
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parses_names_with_parentheses_and_spaces() {
        let stat = parse_stat("42 (a (b) c) S 7 42 42 0 -1").expect("valid stat line");
        assert_eq!(stat, Stat { state: 'S', ppid: 7 });
    }

    #[test]
    fn own_process_is_a_child_of_its_parent() {
        let me = std::process::id();
        let parent = stat(me).expect("own stat").ppid;
        assert!(children(parent).contains(&me));
    }

    #[test]
    fn contains_bytes_finds_inner_slices_only() {
        assert!(contains_bytes(b"A=1\0SECRET=xyz\0", b"xyz"));
        assert!(!contains_bytes(b"abc", b""));
        assert!(!contains_bytes(b"ab", b"abc"));
    }
}
