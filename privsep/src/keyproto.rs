//! The keyholder protocol: the gateway asks for one handshake signature.
//!
//! There is exactly one operation, "sign these bytes with key K using scheme
//! S", over a `SOCK_SEQPACKET` socketpair the broker creates for one gateway.
//! This module is a codec and a policy with no I/O: [`Request::decode`] reads
//! exactly one datagram (fixed big-endian header, exact length, trailing bytes
//! an error) and [`check`] decides whether a decoded request is a handshake
//! signature that key's kind may make. The keyholder closes the channel on any
//! [`Violation`]; it never answers one.
//!
//! # Layout (all integers big-endian)
//!
//! Request, gateway → keyholder, `42 + N` bytes:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | version, [`VERSION`] |
//! | 1 | 1 | operation, [`OP_SIGN`] (the only one) |
//! | 2 | 4 | request id, echoed in the response |
//! | 6 | 32 | key id: SHA-256 of the certificate's SubjectPublicKeyInfo DER |
//! | 38 | 2 | signature scheme (TLS `SignatureScheme` code point) |
//! | 40 | 2 | N, the message length, at most [`MAX_SIGNED`] |
//! | 42 | N | the message to sign (not hashed) |
//!
//! Response, keyholder → gateway, `8 + M` bytes: version, status
//! ([`STATUS_OK`] or [`STATUS_FAILED`]), the request id (u32), M (u16, at most
//! [`MAX_SIGNATURE`]), the signature.
//!
//! # What may be signed
//!
//! Only two shapes ([`Shape`]): a TLS 1.3 server CertificateVerify input
//! (`0x20 × 64 ‖ "TLS 1.3, server CertificateVerify" ‖ 0x00 ‖ hash`, the hash
//! 32 or 48 bytes) and TLS 1.2 ECDHE ServerKeyExchange signed params
//! (`client_random ‖ server_random ‖ 3 ‖ named_curve ‖ len ‖ point`, the curve
//! in an allow-list and the point exactly its size). Schemes per key kind:
//! P-256 signs with `ecdsa_secp256r1_sha256` only; RSA with RSA-PSS, and with
//! PKCS#1 v1.5 only for the TLS 1.2 shape. A TLS 1.2 request is still an
//! oracle for whoever controls the gateway (it picks both randoms and the
//! point); the TLS 1.3 shape binds a transcript hash, which is no better
//! against a live compromise but cannot be replayed as anything but a
//! CertificateVerify.

use serde::{Deserialize, Serialize};

/// The protocol version both sides speak.
pub const VERSION: u8 = 1;
/// The one operation: sign.
pub const OP_SIGN: u8 = 1;
/// A request's fixed header, in bytes.
pub const REQUEST_HEADER: usize = 42;
/// The longest message the keyholder signs (the shapes need at most 165 bytes).
pub const MAX_SIGNED: usize = 256;
/// The largest request datagram; receivers read into `MAX_REQUEST + 1` bytes
/// so that anything longer is seen as oversize, never truncated silently.
pub const MAX_REQUEST: usize = REQUEST_HEADER + MAX_SIGNED;
/// A response's fixed header, in bytes.
pub const RESPONSE_HEADER: usize = 8;
/// The longest signature (RSA-8192 would be 1024 bytes).
pub const MAX_SIGNATURE: usize = 1024;
/// The largest response datagram.
pub const MAX_RESPONSE: usize = RESPONSE_HEADER + MAX_SIGNATURE;
/// Response status: a signature follows.
pub const STATUS_OK: u8 = 0;
/// Response status: the key failed to sign (no signature follows).
pub const STATUS_FAILED: u8 = 1;

/// `ecdsa_secp256r1_sha256`.
pub const ECDSA_P256_SHA256: u16 = 0x0403;
/// `rsa_pkcs1_sha256`, `_sha384`, `_sha512` (TLS 1.2 only).
pub const RSA_PKCS1: [u16; 3] = [0x0401, 0x0501, 0x0601];
/// `rsa_pss_rsae_sha256`, `_sha384`, `_sha512`.
pub const RSA_PSS: [u16; 3] = [0x0804, 0x0805, 0x0806];

/// The TLS 1.3 CertificateVerify context string for a server.
const TLS13_CONTEXT: &[u8] = b"TLS 1.3, server CertificateVerify";
/// The 64 spaces every TLS 1.3 CertificateVerify input starts with.
const TLS13_PAD: usize = 64;
/// `curve_type` `named_curve` in ServerECDHParams.
const NAMED_CURVE: u8 = 3;
/// Named groups a TLS 1.2 ServerKeyExchange may carry, with their point sizes.
const TLS12_GROUPS: [(u16, usize); 3] = [
    (0x001d, 32), // x25519
    (0x0017, 65), // secp256r1, uncompressed
    (0x0018, 97), // secp384r1, uncompressed
];

/// SHA-256 of a SubjectPublicKeyInfo: how both sides name a key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyId(pub [u8; 32]);

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

/// The kinds of private key the keyholder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyKind {
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// RSA, 2048 bits or more.
    Rsa,
}

impl KeyKind {
    /// The schemes this kind may sign with in TLS 1.3, most preferred first.
    pub fn tls13_schemes(self) -> &'static [u16] {
        match self {
            Self::EcdsaP256 => &[ECDSA_P256_SHA256],
            Self::Rsa => &[0x0806, 0x0805, 0x0804],
        }
    }

    /// Every scheme this kind may sign with, most preferred first.
    pub fn schemes(self) -> &'static [u16] {
        match self {
            Self::EcdsaP256 => &[ECDSA_P256_SHA256],
            Self::Rsa => &[0x0806, 0x0805, 0x0804, 0x0601, 0x0501, 0x0401],
        }
    }
}

/// Why a request is refused; the keyholder closes the channel on every one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("datagram of {len} bytes, outside {min}..={max}")]
    Size { len: usize, min: usize, max: usize },
    #[error("unknown protocol version {0}")]
    Version(u8),
    #[error("unknown operation {0}")]
    Operation(u8),
    #[error("declared message length {declared} but {actual} bytes follow")]
    Length { declared: usize, actual: usize },
    #[error("unknown key")]
    UnknownKey,
    #[error("scheme {scheme:#06x} is not allowed for this key and message")]
    Scheme { scheme: u16 },
    #[error("the message is not a handshake signature input")]
    Shape,
    #[error("this key signs for TLS 1.3 only, and the message is a TLS 1.2 ServerKeyExchange")]
    Tls12Refused,
    #[error("response id {got} does not match request {expected}")]
    ResponseId { got: u32, expected: u32 },
    #[error("unknown response status {0}")]
    Status(u8),
}

/// One signing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub id: u32,
    pub key: KeyId,
    pub scheme: u16,
    pub message: &'a [u8],
}

impl<'a> Request<'a> {
    /// Appends the request's bytes to `out`; fails if the message is too long.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), Violation> {
        let len = self.message.len();
        if len > MAX_SIGNED {
            let (min, max) = (REQUEST_HEADER, MAX_REQUEST);
            return Err(Violation::Size { len: REQUEST_HEADER + len, min, max });
        }
        out.extend_from_slice(&[VERSION, OP_SIGN]);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.key.0);
        out.extend_from_slice(&self.scheme.to_be_bytes());
        out.extend_from_slice(&(len as u16).to_be_bytes());
        out.extend_from_slice(self.message);
        Ok(())
    }

    /// Decodes exactly one request datagram.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, Violation> {
        if !(REQUEST_HEADER..=MAX_REQUEST).contains(&bytes.len()) {
            let (min, max) = (REQUEST_HEADER, MAX_REQUEST);
            return Err(Violation::Size { len: bytes.len(), min, max });
        }
        let (header, message) = bytes.split_at(REQUEST_HEADER);
        if header[0] != VERSION {
            return Err(Violation::Version(header[0]));
        }
        if header[1] != OP_SIGN {
            return Err(Violation::Operation(header[1]));
        }
        let declared = usize::from(be16(&header[40..42]));
        if declared != message.len() {
            return Err(Violation::Length { declared, actual: message.len() });
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&header[6..38]);
        Ok(Self {
            id: be32(&header[2..6]),
            key: KeyId(key),
            scheme: be16(&header[38..40]),
            message,
        })
    }
}

/// One answer: a signature, or the key's failure to make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<'a> {
    pub id: u32,
    /// `None`: the keyholder could not sign (an internal failure, not a refusal).
    pub signature: Option<&'a [u8]>,
}

impl<'a> Response<'a> {
    /// Appends the response's bytes to `out`; fails if the signature is too long.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), Violation> {
        let sig = self.signature.unwrap_or_default();
        if sig.len() > MAX_SIGNATURE {
            let (min, max) = (RESPONSE_HEADER, MAX_RESPONSE);
            return Err(Violation::Size { len: RESPONSE_HEADER + sig.len(), min, max });
        }
        let status = if self.signature.is_some() { STATUS_OK } else { STATUS_FAILED };
        out.extend_from_slice(&[VERSION, status]);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&(sig.len() as u16).to_be_bytes());
        out.extend_from_slice(sig);
        Ok(())
    }

    /// Decodes exactly one response datagram.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, Violation> {
        if !(RESPONSE_HEADER..=MAX_RESPONSE).contains(&bytes.len()) {
            let (min, max) = (RESPONSE_HEADER, MAX_RESPONSE);
            return Err(Violation::Size { len: bytes.len(), min, max });
        }
        let (header, sig) = bytes.split_at(RESPONSE_HEADER);
        if header[0] != VERSION {
            return Err(Violation::Version(header[0]));
        }
        let declared = usize::from(be16(&header[6..8]));
        if declared != sig.len() {
            return Err(Violation::Length { declared, actual: sig.len() });
        }
        let id = be32(&header[2..6]);
        match header[1] {
            STATUS_OK if !sig.is_empty() => Ok(Self { id, signature: Some(sig) }),
            STATUS_FAILED if sig.is_empty() => Ok(Self { id, signature: None }),
            STATUS_OK | STATUS_FAILED => Err(Violation::Length { declared, actual: sig.len() }),
            other => Err(Violation::Status(other)),
        }
    }
}

/// The two messages a server signs in a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// TLS 1.3 server CertificateVerify input.
    Tls13CertificateVerify,
    /// TLS 1.2 ECDHE ServerKeyExchange signed params.
    Tls12ServerKeyExchange,
}

/// Which handshake message `message` is, if any.
pub fn shape(message: &[u8]) -> Result<Shape, Violation> {
    if is_tls13_certificate_verify(message) {
        return Ok(Shape::Tls13CertificateVerify);
    }
    if is_tls12_server_key_exchange(message) {
        return Ok(Shape::Tls12ServerKeyExchange);
    }
    Err(Violation::Shape)
}

fn is_tls13_certificate_verify(m: &[u8]) -> bool {
    let prefix = TLS13_PAD + TLS13_CONTEXT.len() + 1;
    let hash_len = m.len().wrapping_sub(prefix);
    m.len() > prefix
        && (hash_len == 32 || hash_len == 48)
        && m[..TLS13_PAD].iter().all(|&b| b == 0x20)
        && &m[TLS13_PAD..TLS13_PAD + TLS13_CONTEXT.len()] == TLS13_CONTEXT
        && m[prefix - 1] == 0
}

fn is_tls12_server_key_exchange(m: &[u8]) -> bool {
    // client_random (32) ‖ server_random (32) ‖ curve_type ‖ named_curve (2) ‖ point length.
    let Some(params) = m.get(64..) else { return false };
    let [curve_type, g0, g1, point_len, point @ ..] = params else { return false };
    let group = u16::from_be_bytes([*g0, *g1]);
    let Some(&(_, size)) = TLS12_GROUPS.iter().find(|(g, _)| *g == group) else { return false };
    let nist = group != 0x001d;
    *curve_type == NAMED_CURVE
        && usize::from(*point_len) == size
        && point.len() == size
        && (!nist || point.first() == Some(&0x04))
}

/// Whether a key of `kind` may sign `message` with `scheme`.
pub fn check(kind: KeyKind, scheme: u16, message: &[u8]) -> Result<Shape, Violation> {
    let shape = shape(message)?;
    let allowed = match (kind, shape) {
        (KeyKind::EcdsaP256, _) => scheme == ECDSA_P256_SHA256,
        (KeyKind::Rsa, Shape::Tls13CertificateVerify) => RSA_PSS.contains(&scheme),
        (KeyKind::Rsa, Shape::Tls12ServerKeyExchange) => {
            RSA_PSS.contains(&scheme) || RSA_PKCS1.contains(&scheme)
        }
    };
    if allowed { Ok(shape) } else { Err(Violation::Scheme { scheme }) }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Valid messages of each shape, for tests here and in other crates.
pub mod samples {
    /// A TLS 1.3 server CertificateVerify input with a `hash_len`-byte hash.
    pub fn tls13(hash_len: usize) -> Vec<u8> {
        let mut m = vec![0x20; super::TLS13_PAD];
        m.extend_from_slice(super::TLS13_CONTEXT);
        m.push(0);
        m.extend(std::iter::repeat_n(0xab, hash_len));
        m
    }

    /// TLS 1.2 ServerKeyExchange params for `group` with a point of `point_len` bytes.
    pub fn tls12(group: u16, point_len: u8) -> Vec<u8> {
        let mut m = vec![0x11; 64];
        m.push(super::NAMED_CURVE);
        m.extend_from_slice(&group.to_be_bytes());
        m.push(point_len);
        m.push(0x04);
        m.extend(std::iter::repeat_n(0x22, usize::from(point_len).saturating_sub(1)));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::samples::{tls12, tls13};
    use super::*;

    fn request(message: &[u8]) -> Vec<u8> {
        let req = Request { id: 7, key: KeyId([9; 32]), scheme: ECDSA_P256_SHA256, message };
        let mut out = Vec::new();
        req.encode(&mut out).expect("short message encodes");
        out
    }

    #[test]
    fn round_trips_requests_and_responses() {
        let msg = tls13(32);
        let bytes = request(&msg);
        assert_eq!(bytes.len(), REQUEST_HEADER + msg.len());
        let req = Request::decode(&bytes).expect("decodes");
        assert_eq!((req.id, req.key, req.message), (7, KeyId([9; 32]), &msg[..]));
        let mut out = Vec::new();
        Response { id: 7, signature: Some(b"sig") }.encode(&mut out).expect("encodes");
        assert_eq!(Response::decode(&out), Ok(Response { id: 7, signature: Some(b"sig") }));
    }

    #[test]
    fn refuses_trailing_bytes_short_headers_and_oversize() {
        let mut bytes = request(&tls13(32));
        bytes.push(0);
        assert!(matches!(Request::decode(&bytes), Err(Violation::Length { .. })));
        assert!(matches!(Request::decode(&bytes[..10]), Err(Violation::Size { .. })));
        let big = vec![1u8; MAX_REQUEST + 1];
        assert!(matches!(Request::decode(&big), Err(Violation::Size { .. })));
        let mut op = request(&tls13(32));
        op[1] = 2;
        assert_eq!(Request::decode(&op), Err(Violation::Operation(2)));
    }

    #[test]
    fn accepts_exactly_the_two_handshake_shapes() {
        assert_eq!(shape(&tls13(32)), Ok(Shape::Tls13CertificateVerify));
        assert_eq!(shape(&tls13(48)), Ok(Shape::Tls13CertificateVerify));
        assert_eq!(shape(&tls13(33)), Err(Violation::Shape));
        assert_eq!(shape(&tls12(0x0017, 65)), Ok(Shape::Tls12ServerKeyExchange));
        assert_eq!(shape(&tls12(0x001d, 32)), Ok(Shape::Tls12ServerKeyExchange));
        assert_eq!(shape(&tls12(0x0019, 133)), Err(Violation::Shape), "secp521r1 is not allowed");
        assert_eq!(shape(&tls12(0x0017, 64)), Err(Violation::Shape));
        let mut trailing = tls12(0x0017, 65);
        trailing.push(0);
        assert_eq!(shape(&trailing), Err(Violation::Shape));
        assert_eq!(shape(b"arbitrary bytes"), Err(Violation::Shape));
    }

    #[test]
    fn allow_lists_schemes_per_key_kind() {
        let (v13, v12) = (tls13(32), tls12(0x0017, 65));
        assert!(check(KeyKind::EcdsaP256, ECDSA_P256_SHA256, &v13).is_ok());
        assert!(check(KeyKind::EcdsaP256, 0x0804, &v13).is_err());
        assert!(check(KeyKind::Rsa, 0x0804, &v13).is_ok());
        assert!(check(KeyKind::Rsa, 0x0401, &v13).is_err(), "PKCS#1 v1.5 is TLS 1.2 only");
        assert!(check(KeyKind::Rsa, 0x0401, &v12).is_ok());
        assert!(check(KeyKind::Rsa, ECDSA_P256_SHA256, &v12).is_err());
    }

    #[test]
    fn survives_ten_thousand_pseudo_random_inputs() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let valid = request(&tls12(0x0017, 65));
        for i in 0..10_000 {
            let len = (next() % (MAX_REQUEST as u64 + 8)) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 2 == 0 {
                // Mutate a valid request so the deeper checks run too.
                bytes = valid.clone();
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            if let Ok(req) = Request::decode(&bytes) {
                let _ = check(KeyKind::Rsa, req.scheme, req.message);
            }
            let _ = Response::decode(&bytes);
        }
    }
}
