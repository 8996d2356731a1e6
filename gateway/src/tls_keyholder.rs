//! Signing through the keyholder: the gateway's stand-in for a private key.
//!
//! rustls asks a [`SigningKey`] for a signature synchronously, in the middle
//! of a handshake. [`RemoteKey`] chooses the scheme locally (from the key's
//! kind, known from the certificate) and [`RemoteSigner::sign`] sends one
//! [`keyproto`] request over the signing channel and waits for the answer
//! with a deadline of [`SIGN_DEADLINE`]. On a multi-thread runtime the wait
//! runs inside `block_in_place`, so other connections keep being served
//! (this also covers a second ClientHello after a HelloRetryRequest, which
//! rustls handles inside a poll); on the one-thread runtime of a small machine
//! it blocks that thread for the round trip (a hung keyholder stalls the
//! gateway once, for at most the deadline, and is then marked broken).
//! Requests on one channel are serialised.
//!
//! Any failure — timeout, closed channel, malformed or mismatched answer —
//! marks the channel broken: every later handshake fails at once (no panic)
//! until the broker hands over a new channel. The gateway reports the break
//! ([`ToBroker::KeyholderBroken`]), so a keyholder that is alive but stuck is
//! replaced too, not only one that exits. Established connections never touch
//! the keyholder and are unaffected.
//!
//! [`ToBroker::KeyholderBroken`]: privsep::msg::ToBroker::KeyholderBroken

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use privsep::keyproto::{self, KeyId, KeyKind, Request, Response};
use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::sign::{Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};
use tracing::warn;

/// The longest a handshake waits for a signature (relayd's choice, too).
pub const SIGN_DEADLINE: Duration = Duration::from_secs(1);

/// Why a signature could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("no keyholder channel")]
    NoChannel,
    #[error("the keyholder channel is broken")]
    Broken,
    #[error("keyholder I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("the keyholder closed the channel")]
    Closed,
    #[error("the keyholder did not answer within {SIGN_DEADLINE:?}")]
    Timeout,
    #[error("bad answer from the keyholder: {0}")]
    Protocol(#[from] keyproto::Violation),
    #[error("the keyholder could not sign")]
    Failed,
}

/// The current signing channel, replaced when the broker sends a new one.
#[derive(Debug, Default)]
pub struct Keyholder {
    link: RwLock<Option<Arc<Link>>>,
    /// Woken when a channel breaks, so the control task can tell the broker.
    broke: tokio::sync::Notify,
    /// The serial of the keyholder whose channel broke last.
    broken_serial: AtomicU64,
}

impl Keyholder {
    /// Uses `fd` (a `SOCK_SEQPACKET` socket to keyholder `serial`) from now on.
    pub fn connect(&self, fd: OwnedFd, serial: u64) {
        let link = Arc::new(Link {
            socket: Mutex::new(UnixDatagram::from(fd)),
            next_id: AtomicU32::new(1),
            broken: AtomicBool::new(false),
            serial,
        });
        *self.link.write().unwrap_or_else(PoisonError::into_inner) = Some(link);
    }

    /// Whether a working channel is known.
    pub fn is_connected(&self) -> bool {
        let link = self.link.read().unwrap_or_else(PoisonError::into_inner);
        link.as_ref().is_some_and(|l| !l.broken.load(Ordering::Relaxed))
    }

    /// One signature, waiting at most [`SIGN_DEADLINE`].
    pub fn sign(&self, key: KeyId, scheme: u16, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let link = self.link.read().unwrap_or_else(PoisonError::into_inner).clone();
        let link = link.ok_or(SignError::NoChannel)?;
        let call = || link.call(key, scheme, message);
        let result = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(call),
            _ => call(),
        };
        if result.as_ref().is_err_and(|e| !matches!(e, SignError::Broken)) {
            // This call broke the channel (later calls fail with `Broken`).
            self.broken_serial.store(link.serial, Ordering::Relaxed);
            self.broke.notify_one();
        }
        result
    }

    /// Waits until a channel breaks; the serial of its keyholder, for the broker.
    pub async fn broken(&self) -> u64 {
        self.broke.notified().await;
        self.broken_serial.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct Link {
    socket: Mutex<UnixDatagram>,
    next_id: AtomicU32,
    /// Set on the first failure; the channel is never used again.
    broken: AtomicBool,
    /// The keyholder at the other end, as the broker numbers it.
    serial: u64,
}

impl Link {
    fn call(&self, key: KeyId, scheme: u16, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let deadline = Instant::now() + SIGN_DEADLINE;
        let socket = self.socket.lock().unwrap_or_else(PoisonError::into_inner);
        if self.broken.load(Ordering::Relaxed) {
            return Err(SignError::Broken);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let result = exchange(&socket, deadline, &Request { id, key, scheme, message });
        // A well-formed refusal (the keyholder's rate limit) leaves the channel sound.
        if let Err(e) = &result
            && !matches!(e, SignError::Failed)
        {
            warn!(cause = %e, "keyholder channel failed; new handshakes fail until it is replaced");
            self.broken.store(true, Ordering::Relaxed);
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
        result
    }
}

fn exchange(
    socket: &UnixDatagram,
    deadline: Instant,
    req: &Request<'_>,
) -> Result<Vec<u8>, SignError> {
    let mut out = Vec::with_capacity(keyproto::REQUEST_HEADER + req.message.len());
    req.encode(&mut out)?;
    socket.set_write_timeout(Some(remaining(deadline)?))?;
    socket.send(&out)?;
    let mut buf = vec![0u8; keyproto::MAX_RESPONSE + 1];
    socket.set_read_timeout(Some(remaining(deadline)?))?;
    let len = socket.recv(&mut buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => SignError::Timeout,
        _ => SignError::Io(e),
    })?;
    if len == 0 {
        return Err(SignError::Closed);
    }
    let resp = Response::decode(&buf[..len])?;
    if resp.id != req.id {
        return Err(keyproto::Violation::ResponseId { got: resp.id, expected: req.id }.into());
    }
    resp.signature.map(<[u8]>::to_vec).ok_or(SignError::Failed)
}

fn remaining(deadline: Instant) -> Result<Duration, SignError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() { Err(SignError::Timeout) } else { Ok(left) }
}

/// A certificate's key, held by the keyholder: what rustls signs with.
#[derive(Debug)]
pub struct RemoteKey {
    id: KeyId,
    kind: KeyKind,
    /// Never asks for a TLS 1.2 ServerKeyExchange signature (the keyholder refuses it).
    tls13_only: bool,
    spki: SubjectPublicKeyInfoDer<'static>,
    keyholder: Arc<Keyholder>,
}

impl RemoteKey {
    /// The key whose public half is `spki` (from the certificate), of `kind`.
    pub fn new(
        spki: SubjectPublicKeyInfoDer<'static>,
        kind: KeyKind,
        keyholder: Arc<Keyholder>,
    ) -> Self {
        Self { id: key_id(spki.as_ref()), kind, tls13_only: false, spki, keyholder }
    }

    /// A key that signs for TLS 1.3 handshakes only.
    pub fn tls13_only(self) -> Self {
        Self { tls13_only: true, ..self }
    }
}

/// SHA-256 of a SubjectPublicKeyInfo DER: the keyholder's name for the key.
pub fn key_id(spki: &[u8]) -> KeyId {
    let digest = ring::digest::digest(&ring::digest::SHA256, spki);
    let mut id = [0u8; 32];
    id.copy_from_slice(digest.as_ref());
    KeyId(id)
}

impl SigningKey for RemoteKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let scheme = self
            .kind
            .schemes()
            .iter()
            .map(|s| SignatureScheme::from(*s))
            .find(|s| offered.contains(s))?;
        let keyholder = self.keyholder.clone();
        let tls13_only = self.tls13_only;
        Some(Box::new(RemoteSigner { key: self.id, scheme, tls13_only, keyholder }))
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(self.spki.clone())
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.kind {
            KeyKind::EcdsaP256 => SignatureAlgorithm::ECDSA,
            KeyKind::Rsa => SignatureAlgorithm::RSA,
        }
    }
}

/// One handshake's signature request.
#[derive(Debug)]
pub struct RemoteSigner {
    key: KeyId,
    scheme: SignatureScheme,
    tls13_only: bool,
    keyholder: Arc<Keyholder>,
}

impl Signer for RemoteSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        if self.tls13_only
            && keyproto::shape(message) == Ok(keyproto::Shape::Tls12ServerKeyExchange)
        {
            return Err(rustls::Error::General("this certificate is for TLS 1.3 only".into()));
        }
        self.keyholder
            .sign(self.key, u16::from(self.scheme), message)
            .map_err(|e| rustls::Error::General(format!("keyholder: {e}")))
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}
