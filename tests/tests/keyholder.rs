//! The real `bulkhead-keyholder`, with this test playing the broker (control socket) and
//! the gateway (signing channels): it signs handshake messages, refuses everything else —
//! arbitrary bytes, a scheme the key may not use, an unknown key, an oversize frame, a TLS
//! 1.2 ServerKeyExchange on a curve outside the allow-list, trailing bytes — and closes the
//! channel that sent it, while other channels keep working. A key marked TLS 1.3-only
//! refuses the TLS 1.2 shape; a channel over its signature rate gets failures, not
//! signatures, and stays open.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use bulkhead_tests::binaries::{KEYHOLDER, binary};
use bulkhead_tests::tls::{CertFiles, KeyType, make_cert};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use privsep::channel::ControlSocket;
use privsep::keyproto::{self, KeyId, MAX_REQUEST, Request, Response, samples};
use privsep::msg::{KeyBytes, KeyFormat, PrivateKey, ToBroker, ToKeyholder};
use privsep::sandbox::Profile;

const P256: u16 = keyproto::ECDSA_P256_SHA256;
const PSS_SHA256: u16 = 0x0804;
const PKCS1_SHA256: u16 = 0x0401;

/// A keyholder holding one P-256 and one RSA key.
struct Keyholder {
    control: ControlSocket,
    _child: tokio::process::Child,
    _rt: tokio::runtime::Runtime,
    ec: KeyId,
    rsa: KeyId,
    _dir: tempfile::TempDir,
}

impl Keyholder {
    fn start() -> Self {
        Self::start_with(0, false)
    }

    /// `signatures_per_second` per channel (0: the default); the P-256 key TLS 1.3-only.
    fn start_with(signatures_per_second: u32, ec_tls13_only: bool) -> Self {
        let dir = bulkhead_tests::temp_dir();
        let (ec, rsa) = (
            make_cert(dir.path(), "ec", KeyType::P256),
            make_cert(dir.path(), "rsa", KeyType::Rsa2048),
        );
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        let (control, theirs) = ControlSocket::pair().expect("socketpair");
        let program = binary(KEYHOLDER);
        let child = rt
            .block_on(async {
                privsep::spawn::spawn_child(&program, &[], &[("RUST_LOG", "info")], theirs.as_fd())
            })
            .expect("spawning the keyholder");
        drop(theirs);
        control
            .send(
                &ToKeyholder::Init { keys: 2, sandbox: Profile::default(), signatures_per_second },
                &[],
            )
            .expect("Init");
        let ec_key = PrivateKey { tls13_only: ec_tls13_only, ..pkcs8(&ec) };
        for key in [ec_key, pkcs8(&rsa)] {
            control.send(&ToKeyholder::Key(key), &[]).expect("Key");
        }
        let ready = control.recv::<ToBroker>().expect("recv").expect("not closed");
        assert_eq!(ready.msg, ToBroker::Ready);
        let (ec, rsa) = (KeyId(ec.forms.key_id), KeyId(rsa.forms.key_id));
        Self { control, _child: child, _rt: rt, ec, rsa, _dir: dir }
    }

    /// A new signing channel: the gateway's end.
    fn channel(&self) -> UnixDatagram {
        let (ours, theirs): (OwnedFd, OwnedFd) =
            socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
                .expect("socketpair");
        self.control.send(&ToKeyholder::Channel, &[theirs.as_fd()]).expect("Channel");
        let sock = UnixDatagram::from(ours);
        sock.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        sock
    }
}

fn pkcs8(files: &CertFiles) -> PrivateKey {
    PrivateKey {
        format: KeyFormat::Pkcs8,
        der: KeyBytes::new(files.forms.pkcs8_der.clone()),
        tls13_only: false,
    }
}

fn request(key: KeyId, scheme: u16, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Request { id: 42, key, scheme, message }.encode(&mut out).expect("encodes");
    out
}

/// Sends `datagram`; the signature if one came back, `None` if the channel was closed.
fn ask(sock: &UnixDatagram, datagram: &[u8]) -> Option<Vec<u8>> {
    Some(answer(sock, datagram)?.expect("a signature"))
}

/// Sends `datagram`: `None` if the channel was closed, else the answer (`Err(())` for a
/// refusal without a signature).
fn answer(sock: &UnixDatagram, datagram: &[u8]) -> Option<Result<Vec<u8>, ()>> {
    sock.send(datagram).ok()?;
    let mut buf = vec![0u8; keyproto::MAX_RESPONSE + 1];
    let len = sock.recv(&mut buf).expect("an answer or end of stream within the timeout");
    if len == 0 {
        return None;
    }
    let resp = Response::decode(&buf[..len]).expect("a well-formed response");
    assert_eq!(resp.id, 42);
    Some(resp.signature.map(<[u8]>::to_vec).ok_or(()))
}

#[test]
fn a_tls13_only_key_never_signs_a_tls12_server_key_exchange() {
    let kh = Keyholder::start_with(0, true);
    let sock = kh.channel();
    assert!(ask(&sock, &request(kh.ec, P256, &samples::tls13(32))).is_some(), "TLS 1.3 signs");
    let tls12 = request(kh.ec, P256, &samples::tls12(0x0017, 65));
    assert_eq!(answer(&sock, &tls12), None, "a TLS 1.2 request closes the channel");
    let other = kh.channel();
    let rsa12 = request(kh.rsa, PKCS1_SHA256, &samples::tls12(0x0018, 97));
    assert!(ask(&other, &rsa12).is_some(), "a key without the option still signs TLS 1.2");
}

#[test]
fn a_channel_over_its_signature_rate_gets_refusals_and_stays_open() {
    const RATE: u32 = 5;
    const FLOOD: usize = 40;
    let kh = Keyholder::start_with(RATE, false);
    let sock = kh.channel();
    let req = request(kh.ec, P256, &samples::tls13(32));
    let started = std::time::Instant::now();
    let answers: Vec<_> = (0..FLOOD).map(|_| answer(&sock, &req).expect("still open")).collect();
    let took = started.elapsed().as_secs_f64();
    let signed = answers.iter().filter(|a| a.is_ok()).count();
    println!(
        "{FLOOD} requests in {took:.3} s at {RATE}/s: {signed} signed, {} refused",
        FLOOD - signed
    );
    let allowed = RATE as usize + (took * f64::from(RATE)).ceil() as usize;
    assert!(signed >= RATE as usize, "the burst is signed: {signed}");
    assert!(signed <= allowed, "{signed} signed, at most {allowed} allowed");
    std::thread::sleep(Duration::from_millis(1200));
    assert!(ask(&sock, &req).is_some(), "signatures resume once the budget refills");
}

#[test]
fn signs_handshake_messages_with_the_allowed_schemes() {
    let kh = Keyholder::start();
    let sock = kh.channel();
    let cases = [
        (kh.ec, P256, samples::tls13(32)),
        (kh.ec, P256, samples::tls13(48)),
        (kh.ec, P256, samples::tls12(0x0017, 65)),
        (kh.ec, P256, samples::tls12(0x001d, 32)),
        (kh.rsa, PSS_SHA256, samples::tls13(32)),
        (kh.rsa, 0x0806, samples::tls13(48)),
        (kh.rsa, PKCS1_SHA256, samples::tls12(0x0018, 97)),
    ];
    for (key, scheme, message) in cases {
        let sig = ask(&sock, &request(key, scheme, &message));
        assert!(sig.is_some_and(|s| !s.is_empty()), "scheme {scheme:#06x} must sign");
    }
}

#[test]
fn refuses_anything_but_a_handshake_signature_and_closes_that_channel() {
    let kh = Keyholder::start();
    let v13 = samples::tls13(32);
    let mut trailing = request(kh.ec, P256, &v13);
    trailing.push(0);
    let mut oversize = request(kh.ec, P256, &v13);
    oversize.resize(MAX_REQUEST + 1, 0x20);
    let mut big = vec![0u8; 64 * 1024];
    big[..oversize.len()].copy_from_slice(&oversize);
    let refusals: Vec<(&str, Vec<u8>)> = vec![
        ("arbitrary bytes", b"please sign this, it is fine".to_vec()),
        ("arbitrary message", request(kh.ec, P256, b"attacker-chosen bytes to sign")),
        ("wrong scheme for a P-256 key", request(kh.ec, PSS_SHA256, &v13)),
        ("PKCS#1 v1.5 in TLS 1.3", request(kh.rsa, PKCS1_SHA256, &v13)),
        ("unknown key id", request(KeyId([7; 32]), P256, &v13)),
        ("oversize frame", oversize),
        ("64 KiB frame", big),
        ("TLS 1.2 SKE on secp521r1", request(kh.ec, P256, &samples::tls12(0x0019, 133))),
        ("TLS 1.2 SKE with a short point", request(kh.ec, P256, &samples::tls12(0x0017, 33))),
        ("trailing bytes", trailing),
        ("an unknown operation", {
            let mut r = request(kh.ec, P256, &v13);
            r[1] = 2;
            r
        }),
    ];
    for (what, datagram) in refusals {
        let sock = kh.channel();
        assert!(
            ask(&sock, &request(kh.ec, P256, &v13)).is_some(),
            "{what}: the channel works first"
        );
        assert_eq!(ask(&sock, &datagram), None, "{what}: must be refused by closing the channel");
        assert_eq!(
            ask(&sock, &request(kh.ec, P256, &v13)),
            None,
            "{what}: the channel stays closed"
        );
    }
    let fresh = kh.channel();
    assert!(ask(&fresh, &request(kh.rsa, PSS_SHA256, &v13)).is_some(), "other channels still work");
}
