//! The worker's life cycle through its control socket: extra channels, drain, idle
//! reports and the broker going away, driven through `process::run`.

mod common;

use std::os::fd::OwnedFd;
use std::time::Duration;

use common::{TempDir, client, request, send, spec};
use http::StatusCode;
use privsep::channel::ControlSocket;
use privsep::msg::{ToBroker, ToWorker};
use tokio::net::UnixStream;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const PATIENCE: Duration = Duration::from_secs(5);

/// A channel pair: the worker's end as a descriptor, the gateway's as a tokio stream.
fn channel() -> (OwnedFd, UnixStream) {
    let (worker, gateway) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    gateway.set_nonblocking(true).expect("non-blocking");
    (worker.into(), UnixStream::from_std(gateway).expect("tokio stream"))
}

/// Starts `process::run` for an app with a static file; returns the broker's end.
fn start(dir: &TempDir, idle_ms: Option<u64>) -> (ControlSocket, UnixStream, JoinHandle<()>) {
    dir.file("www/hello.txt", "hello");
    let mut init = spec(&dir.path().join("www"), &dir.path().join("absent.sock"));
    init.app.idle_timeout_ms = idle_ms;
    let app = bulkhead_worker::App::new(init).expect("valid app");
    let (broker, worker) = ControlSocket::pair().expect("control pair");
    let (fd, gateway) = channel();
    let run = tokio::spawn(async move {
        let control = worker.into_async().expect("async control");
        bulkhead_worker::process::run(app, control, fd).await.expect("clean exit");
    });
    (broker, gateway, run)
}

#[tokio::test]
async fn serves_extra_channels_and_exits_when_the_broker_goes() {
    let dir = TempDir::new();
    let (broker, gateway, run) = start(&dir, None);
    let mut first = client(gateway).await;
    let (head, _) = send(&mut first, request("GET", "/hello.txt", b"")).await;
    assert_eq!(head.status(), StatusCode::OK);

    let (fd, gateway) = channel();
    broker.send(&ToWorker::Channel, &[std::os::fd::AsFd::as_fd(&fd)]).expect("send channel");
    drop(fd);
    let mut second = client(gateway).await;
    let (head, body) = send(&mut second, request("GET", "/hello.txt", b"")).await;
    assert_eq!((head.status(), body.expect("complete")), (StatusCode::OK, "hello".into()));

    drop(broker);
    timeout(PATIENCE, run).await.expect("exits on control EOF").expect("no panic");
}

#[tokio::test]
async fn drain_ends_the_process_once_channels_close() {
    let dir = TempDir::new();
    let (broker, gateway, run) = start(&dir, None);
    let mut sender = client(gateway).await;
    let (head, _) = send(&mut sender, request("GET", "/hello.txt", b"")).await;
    assert_eq!(head.status(), StatusCode::OK);

    broker.send(&ToWorker::Drain, &[]).expect("send drain");
    timeout(PATIENCE, run).await.expect("exits after drain").expect("no panic");
    drop(broker);
}

#[tokio::test]
async fn reports_idle_after_the_idle_timeout() {
    let dir = TempDir::new();
    let (broker, _gateway, run) = start(&dir, Some(50));
    let got = tokio::task::spawn_blocking(move || {
        let msg = broker.recv::<ToBroker>().expect("recv").expect("not closed").msg;
        (msg, broker)
    });
    let (msg, broker) = timeout(PATIENCE, got).await.expect("an idle report").expect("no panic");
    assert_eq!(msg, ToBroker::Idle);
    drop(broker);
    timeout(PATIENCE, run).await.expect("exits on control EOF").expect("no panic");
}
