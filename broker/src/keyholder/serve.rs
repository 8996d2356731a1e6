//! The keyholder's loop: keys from the broker, then signatures for gateways.
//!
//! The control socket's allow-list depends on the phase, as in OpenSSH's
//! monitor: `Init` first, then exactly the announced number of `Key`s, then
//! only `Channel`s. Each signing channel is served one request at a time (so
//! at most one request per channel is in flight here; the kernel's socket
//! buffer bounds what waits), into a fixed buffer one byte larger than the
//! largest valid request, so an oversize datagram is seen and refused without
//! allocating. The first [`Violation`] closes that channel, and nothing is
//! ever answered to a violation.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use anyhow::{Context, bail};
use privsep::channel::{AsyncControlSocket, ControlSocket, Received};
use privsep::keyproto::{MAX_REQUEST, Request, Response, Violation};
use privsep::msg::{ToBroker, ToKeyholder};
use privsep::sandbox::Profile;
use tokio::net::UnixDatagram;
use tracing::{info, warn};

use super::keys::KeyTable;

/// The most signing channels served at once (one per live gateway, plus slack
/// for a gateway being replaced).
const MAX_CHANNELS: usize = 8;

/// What the broker's first message gave the keyholder.
#[derive(Debug)]
pub struct Init {
    pub keys: u16,
    pub sandbox: Profile,
}

/// Receives the broker's `Init` (blocking: no runtime exists yet).
pub fn receive_init(control: &ControlSocket) -> anyhow::Result<Init> {
    match control.recv::<ToKeyholder>()? {
        Some(Received { msg: ToKeyholder::Init { keys, sandbox }, .. }) => {
            Ok(Init { keys, sandbox })
        }
        other => bail!("expected Init from the broker, got {other:?}"),
    }
}

/// Takes the keys, reports ready, then serves signing channels until the broker leaves.
pub async fn run(control: ControlSocket, init: Init) -> anyhow::Result<()> {
    let ctl = control.into_async()?;
    let keys = Arc::new(receive_keys(&ctl, init.keys).await?);
    ctl.send(&ToBroker::Ready, &[]).await?;
    info!(keys = keys.len(), "keyholder ready");
    let live = Arc::new(tokio::sync::Semaphore::new(MAX_CHANNELS));
    loop {
        let fd = match ctl.recv::<ToKeyholder>().await? {
            Some(Received { msg: ToKeyholder::Channel, fds }) => {
                fds.into_iter().next().context("Channel without its descriptor")?
            }
            Some(Received { msg, .. }) => bail!("unexpected {msg:?} from the broker"),
            None => {
                info!("the broker closed the control socket; exiting");
                return Ok(());
            }
        };
        let Ok(permit) = live.clone().try_acquire_owned() else {
            warn!("too many signing channels; refusing a new one");
            continue;
        };
        let socket = channel_socket(fd)?;
        let keys = keys.clone();
        tokio::spawn(async move {
            serve_channel(&socket, &keys).await;
            drop(permit);
        });
    }
}

async fn receive_keys(ctl: &AsyncControlSocket, count: u16) -> anyhow::Result<KeyTable> {
    let mut table = KeyTable::default();
    for _ in 0..count {
        match ctl.recv::<ToKeyholder>().await? {
            Some(Received { msg: ToKeyholder::Key(key), .. }) => {
                let id = table.insert(key).context("a key from the broker")?;
                info!(key = ?id, "key loaded");
            }
            other => bail!("expected a Key from the broker, got {other:?}"),
        }
    }
    Ok(table)
}

fn channel_socket(fd: OwnedFd) -> anyhow::Result<UnixDatagram> {
    let std_socket = std::os::unix::net::UnixDatagram::from(fd);
    std_socket.set_nonblocking(true)?;
    Ok(UnixDatagram::from_std(std_socket)?)
}

/// Answers requests until the gateway closes the channel or breaks the protocol.
pub async fn serve_channel(socket: &UnixDatagram, keys: &KeyTable) {
    let mut buf = [0u8; MAX_REQUEST + 1];
    let mut out = Vec::with_capacity(privsep::keyproto::MAX_RESPONSE);
    loop {
        let len = match socket.recv(&mut buf).await {
            Ok(0) | Err(_) => return info!("a signing channel closed"),
            Ok(len) => len,
        };
        out.clear();
        if let Err(violation) = answer(&buf[..len], keys, &mut out) {
            return warn!(%violation, "refused a signing request; closing the channel");
        }
        if socket.send(&out).await.is_err() {
            return;
        }
    }
}

/// The response to one datagram, or the violation that closes the channel.
pub fn answer(datagram: &[u8], keys: &KeyTable, out: &mut Vec<u8>) -> Result<(), Violation> {
    let req = Request::decode(datagram)?;
    let signature = keys.sign(&req)?;
    if signature.is_none() {
        warn!(key = ?req.key, "the key failed to sign");
    }
    Response { id: req.id, signature: signature.as_deref() }.encode(out)
}
