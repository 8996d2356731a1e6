//! Private keys: parsed with the crypto provider, named by SPKI hash, used to sign.
//!
//! A key is named by the SHA-256 of its SubjectPublicKeyInfo DER, which the
//! gateway computes from the certificate: the broker refuses a key whose
//! SPKI differs from its certificate's, so both sides agree on the name.
//! Only P-256 and RSA keys are accepted (the provider refuses RSA below 2048
//! bits). Signing checks the request against [`keyproto::check`] first.

use std::collections::HashMap;
use std::sync::Arc;

use privsep::keyproto::{self, KeyId, KeyKind, Request, Violation};
use privsep::msg::{KeyBytes, KeyFormat, PrivateKey};
use rustls::sign::SigningKey;
use rustls::{SignatureAlgorithm, SignatureScheme};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};

/// Why a key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the key cannot be parsed: {0}")]
    Parse(rustls::Error),
    #[error("unsupported key type (only ECDSA P-256 and RSA of 2048 bits or more)")]
    Unsupported,
    #[error("the key has no public key to name it by")]
    NoPublicKey,
}

/// A parsed key and what names and limits it.
#[derive(Debug)]
pub struct ParsedKey {
    pub id: KeyId,
    pub kind: KeyKind,
    pub signer: Arc<dyn SigningKey>,
}

/// Parses `key` (without copying its bytes) and names it.
pub fn parse(key: &PrivateKey) -> Result<ParsedKey, KeyError> {
    let bytes = key.der.expose();
    let der = match key.format {
        KeyFormat::Pkcs8 => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(bytes)),
        KeyFormat::Sec1 => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(bytes)),
        KeyFormat::Pkcs1 => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(bytes)),
    };
    let signer = rustls::crypto::ring::sign::any_supported_type(&der).map_err(KeyError::Parse)?;
    let kind = kind_of(signer.as_ref()).ok_or(KeyError::Unsupported)?;
    let spki = signer.public_key().ok_or(KeyError::NoPublicKey)?;
    let id = key_id(spki.as_ref());
    Ok(ParsedKey { id, kind, signer })
}

/// SHA-256 of a SubjectPublicKeyInfo DER.
pub fn key_id(spki: &[u8]) -> KeyId {
    let digest = ring::digest::digest(&ring::digest::SHA256, spki);
    let mut id = [0u8; 32];
    id.copy_from_slice(digest.as_ref());
    KeyId(id)
}

fn kind_of(key: &dyn SigningKey) -> Option<KeyKind> {
    match key.algorithm() {
        SignatureAlgorithm::RSA => Some(KeyKind::Rsa),
        SignatureAlgorithm::ECDSA => {
            key.choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256]).map(|_| KeyKind::EcdsaP256)
        }
        _ => None,
    }
}

/// One key the keyholder signs with.
#[derive(Debug)]
struct Held {
    kind: KeyKind,
    /// Refuses the TLS 1.2 shape: no ServerKeyExchange signing oracle.
    tls13_only: bool,
    signer: Arc<dyn SigningKey>,
    /// The DER as the broker sent it, zeroed when the key is dropped. The
    /// parsed key keeps its scalar in the provider's internal form; keeping
    /// the DER too changes nothing about what this process holds.
    _der: KeyBytes,
}

/// Every key, by id.
#[derive(Debug, Default)]
pub struct KeyTable {
    keys: HashMap<KeyId, Held>,
}

impl KeyTable {
    /// Adds a key; a key already present is replaced.
    pub fn insert(&mut self, key: PrivateKey) -> Result<KeyId, KeyError> {
        let parsed = parse(&key)?;
        let held = Held {
            kind: parsed.kind,
            tls13_only: key.tls13_only,
            signer: parsed.signer,
            _der: key.der,
        };
        self.keys.insert(parsed.id, held);
        Ok(parsed.id)
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `req` is one this table may sign: a held key, an allowed scheme and shape.
    pub fn check(&self, req: &Request<'_>) -> Result<(), Violation> {
        self.held(req).map(|_| ())
    }

    fn held(&self, req: &Request<'_>) -> Result<&Held, Violation> {
        let held = self.keys.get(&req.key).ok_or(Violation::UnknownKey)?;
        let shape = keyproto::check(held.kind, req.scheme, req.message)?;
        if held.tls13_only && shape == keyproto::Shape::Tls12ServerKeyExchange {
            return Err(Violation::Tls12Refused);
        }
        Ok(held)
    }

    /// Signs a permitted request: `Ok(None)` if the provider failed to sign.
    pub fn sign(&self, req: &Request<'_>) -> Result<Option<Vec<u8>>, Violation> {
        let held = self.held(req)?;
        let scheme = SignatureScheme::from(req.scheme);
        let signer =
            held.signer.choose_scheme(&[scheme]).ok_or(Violation::Scheme { scheme: req.scheme })?;
        Ok(signer.sign(req.message).ok())
    }
}
