//! The keyholder's loop: keys from the broker, then signatures for gateways.
//!
//! The control socket's allow-list depends on the phase, as in OpenSSH's
//! monitor: `Init` first, then exactly the announced number of `Key`s, then
//! only `Channel`s. Each signing channel is served one request at a time (so
//! at most one request per channel is in flight here; the kernel's socket
//! buffer bounds what waits), into a fixed buffer one byte larger than the
//! largest valid request, so an oversize datagram is seen and refused without
//! allocating. The first [`Violation`] closes that channel, and nothing is
//! ever answered to a violation. Each channel (one gateway) gets a budget of
//! signatures a second (`tls_signatures_per_second`, bursts of as many):
//! requests over it are answered with a failure, counted, and reported in a
//! log line at most every [`REPORT_EVERY`], so a compromised gateway cannot
//! use the keyholder as a signing engine at full speed.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use privsep::channel::{AsyncControlSocket, ControlSocket, Received};
use privsep::keyproto::{MAX_REQUEST, Request, Response, Violation};
use privsep::msg::{ToBroker, ToKeyholder};
use privsep::sandbox::Profile;
use tokio::net::UnixDatagram;
use tracing::{info, warn};

use super::keys::KeyTable;

/// The least time between two log lines about refused signatures.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The most signing channels served at once (one per live gateway, plus slack
/// for a gateway being replaced).
const MAX_CHANNELS: usize = 8;

/// What the broker's first message gave the keyholder.
#[derive(Debug)]
pub struct Init {
    pub keys: u16,
    pub sandbox: Profile,
    /// Signatures a second per channel (never 0).
    pub signatures_per_second: u32,
}

/// Receives the broker's `Init` (blocking: no runtime exists yet).
pub fn receive_init(control: &ControlSocket) -> anyhow::Result<Init> {
    match control.recv::<ToKeyholder>()? {
        Some(Received {
            msg: ToKeyholder::Init { keys, sandbox, signatures_per_second }, ..
        }) => {
            let signatures_per_second = match signatures_per_second {
                0 => privsep::msg::DEFAULT_SIGNATURES_PER_SECOND,
                n => n,
            };
            Ok(Init { keys, sandbox, signatures_per_second })
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
        let rate = init.signatures_per_second;
        tokio::spawn(async move {
            serve_channel(&socket, &keys, &mut SignBudget::new(rate)).await;
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

/// One channel's signatures: a token bucket of `rate` a second holding up to `rate`,
/// and the count of requests refused for want of one.
#[derive(Debug)]
pub struct SignBudget {
    rate: f64,
    tokens: f64,
    at: Instant,
    /// Refused since the channel opened.
    pub refused: u64,
    reported: u64,
    reported_at: Option<Instant>,
}

impl SignBudget {
    pub fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self { rate, tokens: rate, at: Instant::now(), refused: 0, reported: 0, reported_at: None }
    }

    /// Takes a signature's worth at `now`; `false` (and counted) when none is left.
    pub fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return true;
        }
        self.refused += 1;
        false
    }

    /// Logs the refusals since the last report, at most every [`REPORT_EVERY`].
    fn report(&mut self, now: Instant, closing: bool) {
        let due = self.reported_at.is_none_or(|at| now.duration_since(at) >= REPORT_EVERY);
        if self.refused == self.reported || !(due || closing) {
            return;
        }
        warn!(
            refused = self.refused - self.reported,
            refused_total = self.refused,
            rate = self.rate,
            "signature rate limit: refused signing requests from a gateway"
        );
        self.reported = self.refused;
        self.reported_at = Some(now);
    }
}

/// Answers requests until the gateway closes the channel or breaks the protocol.
pub async fn serve_channel(socket: &UnixDatagram, keys: &KeyTable, budget: &mut SignBudget) {
    let mut buf = [0u8; MAX_REQUEST + 1];
    let mut out = Vec::with_capacity(privsep::keyproto::MAX_RESPONSE);
    loop {
        let len = match socket.recv(&mut buf).await {
            Ok(0) | Err(_) => {
                budget.report(Instant::now(), true);
                return info!("a signing channel closed");
            }
            Ok(len) => len,
        };
        out.clear();
        let now = Instant::now();
        let allowed = budget.take(now);
        budget.report(now, false);
        if let Err(violation) = answer(&buf[..len], keys, allowed, &mut out) {
            return warn!(%violation, "refused a signing request; closing the channel");
        }
        if socket.send(&out).await.is_err() {
            return;
        }
    }
}

/// The response to one datagram, or the violation that closes the channel. A request
/// over the budget (`allowed` false) is checked like any other, then answered with a
/// failure.
pub fn answer(
    datagram: &[u8],
    keys: &KeyTable,
    allowed: bool,
    out: &mut Vec<u8>,
) -> Result<(), Violation> {
    let req = Request::decode(datagram)?;
    if !allowed {
        keys.check(&req)?;
        return Response { id: req.id, signature: None }.encode(out);
    }
    let signature = keys.sign(&req)?;
    if signature.is_none() {
        warn!(key = ?req.key, "the key failed to sign");
    }
    Response { id: req.id, signature: signature.as_deref() }.encode(out)
}
