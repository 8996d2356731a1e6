//! Runs in the broker: reads each app's certificate chain and private key.
//!
//! Chains are public and go to the gateway; keys go to the keyholder only.
//! Every key is parsed once here to check that it matches its certificate
//! (so the gateway and the keyholder name it the same way) and that its type
//! is supported; the parsed form is dropped at once. Key file bytes are held
//! in zeroing buffers. A certificate file that also holds a private key is
//! refused, so a key can never reach the gateway by being pasted in the
//! wrong file.

use std::collections::BTreeMap;
use std::path::Path;

use privsep::keyproto::KeyId;
use privsep::msg::{self, AppTls, KeyBytes, KeyFormat, PrivateKey, ToGateway};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use super::keys;
use crate::config::{App, Config, TlsFiles};

/// Why an app's TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    #[error("app {app}: cannot read {path}: {cause}")]
    Read { app: String, path: String, cause: std::io::Error },
    #[error("app {app}: {path} holds no PEM certificate")]
    NoCertificate { app: String, path: String },
    #[error("app {app}: {path} holds a private key; keep keys in their own file")]
    KeyInCertificateFile { app: String, path: String },
    #[error("app {app}: {path} holds no PEM private key (PKCS#8, SEC1 or PKCS#1)")]
    NoKey { app: String, path: String },
    #[error("app {app}: {cause}")]
    Key { app: String, cause: keys::KeyError },
    #[error("app {app}: the private key does not match the certificate")]
    Mismatch { app: String },
    #[error("app {app}: the certificate chain is too large to send to the gateway")]
    TooLarge { app: String },
}

/// What the broker hands out: chains to the gateway, keys to the keyholder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsMaterial {
    /// One per app with `tls`, in config order.
    pub certs: Vec<AppTls>,
    /// One per distinct key.
    pub keys: Vec<PrivateKey>,
}

impl TlsMaterial {
    /// Whether no app has a certificate.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

/// Reads every app's TLS files. The default certificate is `default_cert`'s,
/// else the first app with `tls`.
pub fn load(config: &Config) -> Result<TlsMaterial, TlsFileError> {
    let default = config
        .default_cert
        .clone()
        .or_else(|| config.apps.iter().find(|a| a.tls.is_some()).map(|a| a.spec.name.clone()));
    let mut material = TlsMaterial::default();
    let mut seen: BTreeMap<KeyId, ()> = BTreeMap::new();
    for app in &config.apps {
        let Some(files) = &app.tls else { continue };
        let (tls, key, id) = load_app(app, files, default.as_deref())?;
        material.certs.push(tls);
        if seen.insert(id, ()).is_none() {
            material.keys.push(key);
        } else if key.tls13_only {
            // A key shared by several apps refuses TLS 1.2 if any of them asks it to.
            let held = material.keys.iter_mut().filter(|k| k.der == key.der);
            held.for_each(|k| k.tls13_only = true);
        }
    }
    Ok(material)
}

fn load_app(
    app: &App,
    files: &TlsFiles,
    default: Option<&str>,
) -> Result<(AppTls, PrivateKey, KeyId), TlsFileError> {
    let name = app.spec.name.clone();
    let chain = read_chain(&name, &files.cert)?;
    let mut key = read_key(&name, &files.key)?;
    key.tls13_only = files.tls13_only;
    let parsed =
        keys::parse(&key).map_err(|cause| TlsFileError::Key { app: name.clone(), cause })?;
    let certified = CertifiedKey::new(chain.clone(), parsed.signer);
    if certified.keys_match().is_err() {
        return Err(TlsFileError::Mismatch { app: name });
    }
    let tls = AppTls {
        app: name.clone(),
        chain: chain.iter().map(|c| c.as_ref().to_vec()).collect(),
        key: parsed.kind,
        tls13_only: files.tls13_only,
        default: default == Some(name.as_str()),
        redirect_https: app.redirect_https,
        hsts: app.hsts.clone(),
    };
    if msg::encode(&ToGateway::Tls(Box::new(tls.clone()))).is_err() {
        return Err(TlsFileError::TooLarge { app: name });
    }
    Ok((tls, key, parsed.id))
}

fn read(app: &str, path: &Path) -> Result<Zeroizing<Vec<u8>>, TlsFileError> {
    std::fs::read(path).map(Zeroizing::new).map_err(|cause| TlsFileError::Read {
        app: app.to_owned(),
        path: path.display().to_string(),
        cause,
    })
}

fn read_chain(app: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let text = read(app, path)?;
    let at = || (app.to_owned(), path.display().to_string());
    let mut chain = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(&text) {
        match section {
            Ok((SectionKind::Certificate, der)) => chain.push(CertificateDer::from(der)),
            Ok((
                SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey,
                mut der,
            )) => {
                zeroize::Zeroize::zeroize(&mut der);
                let (app, path) = at();
                return Err(TlsFileError::KeyInCertificateFile { app, path });
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if chain.is_empty() {
        let (app, path) = at();
        return Err(TlsFileError::NoCertificate { app, path });
    }
    Ok(chain)
}

fn read_key(app: &str, path: &Path) -> Result<PrivateKey, TlsFileError> {
    let text = read(app, path)?;
    let no_key = || TlsFileError::NoKey { app: app.to_owned(), path: path.display().to_string() };
    let der = PrivateKeyDer::from_pem_slice(&text).map_err(|_| no_key())?;
    let format = match &der {
        PrivateKeyDer::Pkcs8(_) => KeyFormat::Pkcs8,
        PrivateKeyDer::Sec1(_) => KeyFormat::Sec1,
        PrivateKeyDer::Pkcs1(_) => KeyFormat::Pkcs1,
        _ => return Err(no_key()),
    };
    Ok(PrivateKey { format, der: KeyBytes::new(der.secret_der().to_vec()), tls13_only: false })
}
