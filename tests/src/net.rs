//! Loopback networking helpers: free ports, bounded polling and a raw HTTP probe.
//!
//! Everything here talks to 127.0.0.1 only.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// How long one probe may wait for a connection or an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause between two attempts of [`poll_until`].
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A loopback port that was free a moment ago (bind to port 0, read the port, release it).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("binding 127.0.0.1:0 to find a free port")
        .port()
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Calls `attempt` until it returns `Some` or `timeout` passes.
pub fn poll_until<T>(timeout: Duration, mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = attempt() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Sends one `GET /` with a host name no app claims and returns the status line, if the
/// server answered with something that looks like HTTP/1.x.
pub fn http_status_line(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    let request = "GET / HTTP/1.1\r\nHost: readiness-probe.invalid\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 64];
    let read = stream.read(&mut head).ok()?;
    let text = String::from_utf8_lossy(&head[..read]);
    let line = text.lines().next()?.to_owned();
    line.starts_with("HTTP/1.").then_some(line)
}

/// Whether something accepts TCP connections at `addr`.
pub fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).is_ok()
}
