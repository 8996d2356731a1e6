//! A bounded load generator: N client threads, each looping requests to one host for a
//! fixed time (and at most a fixed count), counting what came back.
//!
//! Connection errors are kept apart from HTTP statuses, and "connection refused" apart from
//! every other error, because the failure rules promise different things about them: a
//! restarting gateway may cost the connections it held, but never a refused one. Every load
//! prints its counts when it stops.

use reqwest::blocking::Client as Inner;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest any load may run, whatever a test asks.
pub const MAX_DURATION: Duration = Duration::from_secs(10);
/// How long one request of a load may take before it counts as an error.
const LOAD_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How many failures a report keeps word for word.
const KEPT_FAILURES: usize = 8;

/// What to send, from how many threads, for how long.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// A label for the printed report.
    pub name: String,
    /// The `Host` the requests go to (resolved to the gateway).
    pub host: String,
    /// The path and query.
    pub path: String,
    /// Concurrent client threads (each one request at a time).
    pub threads: usize,
    /// How long each thread loops (capped at [`MAX_DURATION`]).
    pub duration: Duration,
    /// The most requests each thread sends.
    pub max_per_thread: usize,
    /// A new TCP connection per request (no keep-alive), to see every connect.
    pub fresh_connections: bool,
    /// A 200 counts as success only if its body contains this.
    pub expect: Option<String>,
    /// HTTP/2 with prior knowledge instead of HTTP/1.1.
    pub h2c: bool,
}

impl LoadSpec {
    /// `threads` threads requesting `http://HOST/PATH` for `duration` over HTTP/1.1 keep-alive.
    pub fn new(host: &str, path: &str, threads: usize, duration: Duration) -> Self {
        Self {
            name: host.to_owned(),
            host: host.to_owned(),
            path: path.to_owned(),
            threads,
            duration: duration.min(MAX_DURATION),
            max_per_thread: 5_000,
            fresh_connections: false,
            expect: None,
            h2c: false,
        }
    }

    /// Only bodies containing `text` count as success.
    pub fn expect(mut self, text: &str) -> Self {
        self.expect = Some(text.to_owned());
        self
    }

    /// One TCP connection per request.
    pub fn fresh_connections(mut self) -> Self {
        self.fresh_connections = true;
        self
    }

    /// At most `n` requests per thread.
    pub fn max_per_thread(mut self, n: usize) -> Self {
        self.max_per_thread = n;
        self
    }

    /// Speak h2c instead of HTTP/1.1.
    pub fn h2c(mut self) -> Self {
        self.h2c = true;
        self
    }
}

/// What a load saw.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// The spec's label.
    pub name: String,
    /// Requests that got a 200 with the expected body.
    pub ok: usize,
    /// Every status received, successes included.
    pub statuses: BTreeMap<u16, usize>,
    /// 200s whose body was not the expected one.
    pub wrong_body: usize,
    /// Connections refused by the kernel (nothing listening).
    pub refused: usize,
    /// Every other transport error (reset, timeout, EOF).
    pub other_errors: usize,
    /// A few failures, with when they happened since the load started.
    pub failures: Vec<(Duration, String)>,
    /// How long the load ran.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Every request that did not succeed.
    pub fn failed(&self) -> usize {
        self.total() - self.ok
    }

    /// Every request sent.
    pub fn total(&self) -> usize {
        self.statuses.values().sum::<usize>() + self.refused + self.other_errors
    }

    fn merge(&mut self, other: Self) {
        self.ok += other.ok;
        self.wrong_body += other.wrong_body;
        self.refused += other.refused;
        self.other_errors += other.other_errors;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.failures.extend(other.failures);
        self.failures.sort_by_key(|f| f.0);
        self.failures.truncate(KEPT_FAILURES);
    }

    fn failure(&mut self, at: Duration, what: String) {
        if self.failures.len() < KEPT_FAILURES {
            self.failures.push((at, what));
        }
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "load [{}]: {} requests in {:.2?}: ok {}, failed {}, statuses {:?}, wrong body {}, \
             connection refused {}, other errors {}",
            self.name,
            self.total(),
            self.elapsed,
            self.ok,
            self.failed(),
            self.statuses,
            self.wrong_body,
            self.refused,
            self.other_errors
        )?;
        for (at, what) in &self.failures {
            write!(f, "\n  at {at:.2?}: {what}")?;
        }
        Ok(())
    }
}

/// A load running in the background.
#[derive(Debug)]
pub struct Load {
    name: String,
    threads: Vec<JoinHandle<LoadReport>>,
    stop: Arc<AtomicBool>,
    in_flight: Arc<AtomicUsize>,
    started: Instant,
}

impl Load {
    /// Starts `spec.threads` threads sending to the gateway at `addr`.
    pub fn start(addr: SocketAddr, spec: &LoadSpec) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let threads = (0..spec.threads)
            .map(|_| {
                let (spec, stop, in_flight) = (spec.clone(), stop.clone(), in_flight.clone());
                std::thread::spawn(move || one_thread(addr, &spec, started, &stop, &in_flight))
            })
            .collect();
        Self { name: spec.name.clone(), threads, stop, in_flight, started }
    }

    /// Requests sent but not yet answered, right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// How long since the load started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits for every thread to reach its time or count limit, then prints the report.
    pub fn finish(self) -> LoadReport {
        self.collect()
    }

    /// Stops the threads after their current request and prints the report.
    pub fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        self.collect()
    }

    fn collect(self) -> LoadReport {
        let mut report = LoadReport { name: self.name, ..LoadReport::default() };
        for thread in self.threads {
            report.merge(thread.join().expect("a load thread panicked"));
        }
        report.elapsed = self.started.elapsed();
        println!("{report}");
        report
    }
}

/// Runs a load to completion.
pub fn run(addr: SocketAddr, spec: &LoadSpec) -> LoadReport {
    Load::start(addr, spec).finish()
}

fn client(addr: SocketAddr, spec: &LoadSpec) -> Inner {
    let mut builder = Inner::builder()
        .no_proxy()
        .timeout(LOAD_REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&spec.host, addr)
        .pool_max_idle_per_host(usize::from(!spec.fresh_connections));
    builder = if spec.h2c { builder.http2_prior_knowledge() } else { builder.http1_only() };
    builder.build().expect("building a load client")
}

fn one_thread(
    addr: SocketAddr,
    spec: &LoadSpec,
    started: Instant,
    stop: &AtomicBool,
    in_flight: &AtomicUsize,
) -> LoadReport {
    let client = client(addr, spec);
    let url = format!("http://{}:{}{}", spec.host, addr.port(), spec.path);
    let mut report = LoadReport::default();
    for _ in 0..spec.max_per_thread {
        if stop.load(Ordering::SeqCst) || started.elapsed() >= spec.duration {
            break;
        }
        in_flight.fetch_add(1, Ordering::SeqCst);
        let result = client.get(&url).send().and_then(|r| Ok((r.status().as_u16(), r.text()?)));
        in_flight.fetch_sub(1, Ordering::SeqCst);
        let at = started.elapsed();
        match result {
            Ok((status, body)) => {
                *report.statuses.entry(status).or_default() += 1;
                let body_ok = spec.expect.as_ref().is_none_or(|e| body.contains(e.as_str()));
                match (status, body_ok) {
                    (200, true) => report.ok += 1,
                    (200, false) => {
                        report.wrong_body += 1;
                        report.failure(at, format!("200 with body {body:?}"));
                    }
                    _ => report.failure(at, format!("{status}: {}", body.trim_end())),
                }
            }
            Err(err) if is_refused(&err) => {
                report.refused += 1;
                report.failure(at, format!("connection refused: {err}"));
            }
            Err(err) => {
                report.other_errors += 1;
                report.failure(at, format!("{err:?}"));
            }
        }
    }
    report
}

/// Whether an error comes from a refused connection (ECONNREFUSED).
pub fn is_refused(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// Sends `GET http://HOST/PATH` once per `interval` until a 200 whose body contains
/// `expect`; how long that took, or `None` after `timeout`.
pub fn time_until_ok(
    addr: SocketAddr,
    host: &str,
    path: &str,
    expect: &str,
    timeout: Duration,
) -> Option<Duration> {
    let spec = LoadSpec::new(host, path, 1, timeout).fresh_connections();
    let client = client(addr, &spec);
    let url = format!("http://{host}:{}{path}", addr.port());
    let started = Instant::now();
    while started.elapsed() < timeout {
        let reply = client.get(&url).timeout(Duration::from_secs(2)).send();
        if let Ok(r) = reply
            && r.status() == 200
            && r.text().is_ok_and(|body| body.contains(expect))
        {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_recognised_through_the_error_chain() {
        let port = crate::net::free_port();
        let addr = crate::net::loopback(port);
        let spec = LoadSpec::new("x.localhost", "/", 1, Duration::from_millis(200))
            .fresh_connections()
            .max_per_thread(3);
        let report = run(addr, &spec);
        assert_eq!((report.refused, report.other_errors, report.ok), (3, 0, 0), "{report}");
    }
}
