//! TLS termination: certificates by SNI, the rustls configuration, HTTPS options.
//!
//! The gateway holds certificate chains (public) and, per app, a
//! [`RemoteKey`] that signs through the keyholder: it never holds a private
//! key. SNI picks the app through the same routing table as the Host header;
//! an unknown or absent SNI gets the default certificate. One crypto
//! provider, ring, is passed explicitly (`builder_with_provider`). TLS 1.3
//! and 1.2 (ECDHE only: rustls has no RSA key exchange), ALPN `h2` and
//! `http/1.1`, no 0-RTT; resumption uses rustls's bounded in-memory session
//! cache, so this process holds at most that many sessions' secrets. The protocol ALPN
//! chose is the only one a connection speaks ([`by_alpn`]): after `h2`, HTTP/1.1 bytes
//! are an HTTP/2 protocol error, never a request.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use http::HeaderValue;
use privsep::msg::AppTls;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CipherSuite, ServerConfig, version};

use crate::State;
use crate::tls_keyholder::{Keyholder, RemoteKey};

/// Why a certificate from the broker cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("app {app}: the certificate chain is empty")]
    NoCertificate { app: String },
    #[error("app {app}: the certificate cannot be parsed: {cause}")]
    Certificate { app: String, cause: rustls::Error },
    #[error("app {app}: the HSTS value is not a valid header value")]
    Hsts { app: String },
    #[error("cannot build the TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// One app's certificate and HTTPS options.
#[derive(Debug)]
struct AppCert {
    certified: Arc<CertifiedKey>,
    /// Offered to clients that can speak TLS 1.3 only (`min_version = "1.3"`).
    tls13_only: bool,
    default: bool,
    redirect_https: bool,
    hsts: Option<HeaderValue>,
}

/// The certificates, the signing channel and the HTTPS port.
#[derive(Debug, Default)]
pub struct TlsState {
    apps: RwLock<HashMap<String, AppCert>>,
    pub keyholder: Arc<Keyholder>,
    /// The first TLS listener's port, for redirects.
    https_port: OnceLock<u16>,
}

impl TlsState {
    /// Adds or replaces an app's certificate; checks that the key is the certificate's.
    pub fn set(&self, tls: &AppTls) -> Result<(), TlsError> {
        let app = tls.app.clone();
        let chain: Vec<CertificateDer<'static>> =
            tls.chain.iter().map(|der| CertificateDer::from(der.clone())).collect();
        let leaf = chain.first().ok_or_else(|| TlsError::NoCertificate { app: app.clone() })?;
        let spki = ParsedCertificate::try_from(leaf)
            .map_err(|cause| TlsError::Certificate { app: app.clone(), cause })?
            .subject_public_key_info();
        let mut key = RemoteKey::new(spki, tls.key, self.keyholder.clone());
        if tls.tls13_only {
            key = key.tls13_only();
        }
        let certified = CertifiedKey::new(chain, Arc::new(key));
        certified
            .keys_match()
            .map_err(|cause| TlsError::Certificate { app: app.clone(), cause })?;
        let hsts = match &tls.hsts {
            Some(v) => {
                Some(HeaderValue::try_from(v).map_err(|_| TlsError::Hsts { app: app.clone() })?)
            }
            None => None,
        };
        let cert = AppCert {
            certified: Arc::new(certified),
            tls13_only: tls.tls13_only,
            default: tls.default,
            redirect_https: tls.redirect_https,
            hsts,
        };
        self.apps.write().unwrap_or_else(PoisonError::into_inner).insert(app, cert);
        Ok(())
    }

    /// Forgets an app's certificate.
    pub fn remove(&self, app: &str) {
        self.apps.write().unwrap_or_else(PoisonError::into_inner).remove(app);
    }

    /// Remembers the port redirects point to (the first TLS listener's).
    pub fn set_https_port(&self, port: u16) {
        let _ = self.https_port.set(port);
    }

    /// `https://host[:port]` + `path_and_query`, if `app` redirects plain HTTP.
    pub fn redirect(&self, app: &str, host: &str, path_and_query: &str) -> Option<String> {
        let apps = self.apps.read().unwrap_or_else(PoisonError::into_inner);
        if !apps.get(app).is_some_and(|c| c.redirect_https) {
            return None;
        }
        let name = strip_port(host);
        Some(match self.https_port.get() {
            Some(443) | None => format!("https://{name}{path_and_query}"),
            Some(port) => format!("https://{name}:{port}{path_and_query}"),
        })
    }

    /// The `Strict-Transport-Security` value for `app`'s HTTPS responses.
    pub fn hsts(&self, app: &str) -> Option<HeaderValue> {
        let apps = self.apps.read().unwrap_or_else(PoisonError::into_inner);
        apps.get(app).and_then(|c| c.hsts.clone())
    }

    /// The certificate for `app` (else the default), unless it is for TLS 1.3 only and
    /// the client cannot speak TLS 1.3.
    fn certificate(&self, app: Option<&str>, tls13: bool) -> Option<Arc<CertifiedKey>> {
        let apps = self.apps.read().unwrap_or_else(PoisonError::into_inner);
        let chosen = app.and_then(|a| apps.get(a));
        let chosen = chosen.or_else(|| apps.values().find(|c| c.default))?;
        if chosen.tls13_only && !tls13 {
            tracing::debug!(?app, "a TLS 1.2 client asked for a TLS 1.3-only certificate");
            return None;
        }
        Some(chosen.certified.clone())
    }
}

/// `host` without a `:port` suffix (bracketed IPv6 literals kept whole).
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}

/// The TLS 1.3 cipher suites (RFC 8446, appendix B.4).
const TLS13_SUITES: &[CipherSuite] = &[
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS13_AES_128_CCM_SHA256,
    CipherSuite::TLS13_AES_128_CCM_8_SHA256,
];

/// Picks a certificate by SNI through the routing table.
#[derive(Debug)]
struct SniResolver {
    state: Arc<State>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let app = hello.server_name().and_then(|name| self.state.app_for(name));
        // rustls negotiates TLS 1.3 whenever the client offers one of its suites.
        let tls13 = hello.cipher_suites().iter().any(|s| TLS13_SUITES.contains(s));
        self.state.tls.certificate(app.as_deref(), tls13)
    }
}

/// nginx's `$ssl_protocol` name of the connection's TLS version.
pub fn version_name(conn: &rustls::ServerConnection) -> Option<&'static str> {
    match conn.protocol_version()? {
        rustls::ProtocolVersion::TLSv1_3 => Some("TLSv1.3"),
        rustls::ProtocolVersion::TLSv1_2 => Some("TLSv1.2"),
        _ => Some("TLS"),
    }
}

/// `serving` restricted to the protocol ALPN negotiated: `h2` serves HTTP/2 only (a
/// connection that then sends HTTP/1.1 gets a GOAWAY and is closed), `http/1.1`
/// HTTP/1.1 only; without ALPN, either, by the first bytes.
pub fn by_alpn(alpn: Option<&[u8]>, mut serving: crate::server::Serving) -> crate::server::Serving {
    serving.builder = match alpn {
        Some(b"h2") => serving.builder.http2_only(),
        Some(b"http/1.1") => serving.builder.http1_only(),
        _ => serving.builder,
    };
    serving
}

/// The gateway's one TLS configuration.
pub fn server_config(state: Arc<State>) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&version::TLS13, &version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { state }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ports_but_not_ipv6_literals() {
        assert_eq!(strip_port("a.localhost:8443"), "a.localhost");
        assert_eq!(strip_port("a.localhost"), "a.localhost");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }
}
