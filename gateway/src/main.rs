//! `bulkhead-gateway`: started by the broker with its control socket at fd 3.
//!
//! Order matters: receive `Init`, enter the sandbox while single-threaded,
//! build the runtime, lock the sandbox (seccomp on every thread), and only
//! then accept a client connection.

#![forbid(unsafe_code)]

use privsep::channel::ControlSocket;
use privsep::sandbox;

fn main() -> anyhow::Result<()> {
    privsep::logging::init();
    let control = ControlSocket::inherited(privsep::CONTROL_FD)?;
    let init = bulkhead_gateway::control::receive_init(&control)?;
    sandbox::enter(&init.sandbox)?;
    let rt = runtime(runtime_threads())?;
    sandbox::lock(&init.sandbox)?;
    rt.block_on(bulkhead_gateway::run(control, init))
}

/// Half the CPUs (at least one): the gateway shares the machine with the
/// workers and php-fpm, and fewer threads mean fewer cross-thread wake-ups
/// (measured on 2 cores: one thread served 8% more PHP requests than two).
fn runtime_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// One thread: a current-thread runtime, on which a keyholder call simply blocks
/// it (about 0.1 ms, as an in-process signature would). More: a multi-thread
/// runtime, where a keyholder call runs in `block_in_place` so other connections
/// go on. That hands the thread's work to a blocking-pool thread per waiting
/// handshake, so the pool is capped: unbounded, a burst of 64 full handshakes left
/// 64 threads, each with its own malloc arena (22 MiB more resident).
fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads == 1 {
        return tokio::runtime::Builder::new_current_thread().enable_all().build();
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .max_blocking_threads(threads)
        .thread_name("gateway")
        .enable_all()
        .build()
}
