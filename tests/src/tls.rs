//! HTTPS test worlds: self-signed certificates made with the `openssl` CLI, a running
//! Bulkhead serving static apps over TLS, a rustls client, and a process-memory scanner.
//!
//! Each app answers `NAME.localhost` with its own certificate (the subject is
//! `CN=NAME.localhost`), so a test can tell which certificate SNI selected. The key files
//! are PKCS#8 PEM, as `openssl req` writes them; [`KeyForms`] holds every encoding of the
//! key a memory scan looks for.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use sha2::Digest;
use tempfile::TempDir;

use crate::bulkhead::Bulkhead;
use crate::net::{free_port, loopback};
use crate::procfs::{self, Pid};

/// The key types the keyholder supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    P256,
    Rsa2048,
}

/// One app's certificate and key files, and the key's forms to scan memory for.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub host: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The leaf certificate, DER.
    pub cert_der: Vec<u8>,
    pub forms: KeyForms,
}

/// Every encoding of a private key that must never be found in the gateway.
#[derive(Debug, Clone)]
pub struct KeyForms {
    pub pkcs8_der: Vec<u8>,
    /// SEC1 (EC) or PKCS#1 (RSA) DER.
    pub traditional_der: Vec<u8>,
    /// The PEM file's text.
    pub pem: Vec<u8>,
    /// P-256: the 32-byte secret scalar, big-endian.
    pub scalar: Option<Vec<u8>>,
    /// SHA-256 of the SubjectPublicKeyInfo DER: the keyholder's name for the key.
    pub key_id: [u8; 32],
}

impl KeyForms {
    /// `(name, bytes)` of every form, the scalar also little-endian.
    pub fn all(&self) -> Vec<(&'static str, Vec<u8>)> {
        let mut out = vec![
            ("PKCS#8 DER", self.pkcs8_der.clone()),
            ("SEC1/PKCS#1 DER", self.traditional_der.clone()),
            ("PEM text", self.pem.clone()),
            ("PEM body line", pem_body_line(&self.pem)),
        ];
        if let Some(s) = &self.scalar {
            out.push(("scalar (big-endian)", s.clone()));
            out.push(("scalar (little-endian)", s.iter().rev().copied().collect()));
        }
        out
    }
}

/// Makes a self-signed certificate for `NAME.localhost` in `dir`.
pub fn make_cert(dir: &Path, name: &str, key: KeyType) -> CertFiles {
    let host = format!("{name}.localhost");
    let (cert, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    let newkey: &[&str] = match key {
        KeyType::P256 => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        KeyType::Rsa2048 => &["-newkey", "rsa:2048"],
    };
    let san = format!("subjectAltName=DNS:{host}");
    let subj = format!("/CN={host}");
    openssl(
        &[
            &["req", "-x509", "-nodes", "-days", "2"],
            newkey,
            &[
                "-keyout",
                path_str(&key_path),
                "-out",
                path_str(&cert),
                "-subj",
                &subj,
                "-addext",
                &san,
                "-addext",
                "basicConstraints=critical,CA:FALSE",
            ],
        ]
        .concat(),
    );
    let cert_der = openssl(&["x509", "-in", path_str(&cert), "-outform", "DER"]);
    let key_in = path_str(&key_path);
    let pkcs8_der = openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", key_in, "-outform", "DER"]);
    let traditional_der = openssl(&["pkey", "-in", key_in, "-outform", "DER"]);
    let spki = openssl(&["pkey", "-in", path_str(&key_path), "-pubout", "-outform", "DER"]);
    let pem = std::fs::read(&key_path).expect("reading the key file just written");
    let scalar = (key == KeyType::P256).then(|| p256_scalar(&pkcs8_der));
    let key_id: [u8; 32] = sha2::Sha256::digest(&spki).into();
    CertFiles {
        host,
        cert,
        key: key_path,
        cert_der,
        forms: KeyForms { pkcs8_der, traditional_der, pem, scalar, key_id },
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// Runs `openssl` and returns its stdout; panics with its stderr on failure.
pub fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().expect("running openssl (install it)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The secret scalar of a P-256 PKCS#8 key: the 32 bytes after `02 01 01 04 20`.
fn p256_scalar(pkcs8: &[u8]) -> Vec<u8> {
    let marker = [0x02, 0x01, 0x01, 0x04, 0x20];
    let at = pkcs8.windows(5).position(|w| w == marker).expect("an ECPrivateKey in the PKCS#8");
    pkcs8[at + 5..at + 37].to_vec()
}

fn pem_body_line(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    text.lines().nth(1).unwrap_or_default().as_bytes().to_vec()
}

/// A running Bulkhead with TLS apps serving a static `index.html`.
#[derive(Debug)]
pub struct TlsWorld {
    pub bulkhead: Bulkhead,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub certs: Vec<CertFiles>,
    /// Every app's certificate, for clients that must trust them all.
    pub ca: PathBuf,
    pub dir: TempDir,
}

impl TlsWorld {
    /// Starts Bulkhead with one app per `(name, key type)`; `extra` lines go into each app,
    /// except those starting `tls:`, whose rest goes into each app's `tls` table, and those
    /// starting `top:`, whose rest goes to the top level.
    pub fn start(apps: &[(&str, KeyType)], extra: &[&str]) -> Self {
        let dir = crate::temp_dir();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).expect("creating the document root");
        std::fs::write(root.join("index.html"), "hello over tls\n").expect("writing index.html");
        let certs: Vec<CertFiles> =
            apps.iter().map(|(name, key)| make_cert(dir.path(), name, *key)).collect();
        let ca = dir.path().join("ca.pem");
        let pems: Vec<u8> =
            certs.iter().flat_map(|c| std::fs::read(&c.cert).unwrap_or_default()).collect();
        std::fs::write(&ca, pems).expect("writing ca.pem");
        let (http, https) = (loopback(free_port()), loopback(free_port()));
        let toml = config(dir.path(), &root, http, https, &certs, extra);
        let bulkhead = Bulkhead::start(&toml);
        Self { bulkhead, http, https, certs, ca, dir }
    }

    /// The live child of the broker running `exe`.
    pub fn child(&self, exe: &str) -> Pid {
        self.bulkhead
            .children()
            .into_iter()
            .find(|&p| procfs::exe_name(p).as_deref() == Some(exe))
            .unwrap_or_else(|| panic!("no live {exe}"))
    }

    /// `curl` against `host` on the HTTPS port, with the test CA; returns (status, stdout, stderr).
    pub fn curl(&self, host: &str, path: &str, args: &[&str]) -> (bool, String, String) {
        let resolve = format!("{host}:{}:127.0.0.1", self.https.port());
        let url = format!("https://{host}:{}{path}", self.https.port());
        let out = Command::new("curl")
            .args(["-sS", "-v", "--max-time", "10", "--resolve", &resolve, "--cacert"])
            .arg(&self.ca)
            .args(args)
            .arg(&url)
            .output()
            .expect("running curl (install it)");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }

    /// A rustls client configuration trusting every app's certificate.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let roots: Vec<&[u8]> = self.certs.iter().map(|c| c.cert_der.as_slice()).collect();
        client_config(&roots, alpn)
    }

    /// One TLS handshake with a rustls client; the server's leaf certificate on success.
    pub fn handshake(&self, host: &str) -> Result<Vec<u8>, String> {
        self.handshake_with(self.client_config(&[b"h2"]), host)
    }

    /// Like [`TlsWorld::handshake`], trusting only `roots` (DER certificates).
    pub fn handshake_trusting(&self, roots: &[&[u8]], host: &str) -> Result<Vec<u8>, String> {
        self.handshake_with(client_config(roots, &[b"h2"]), host)
    }

    fn handshake_with(
        &self,
        config: Arc<rustls::ClientConfig>,
        host: &str,
    ) -> Result<Vec<u8>, String> {
        let name = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
        let mut conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        let mut sock = std::net::TcpStream::connect(self.https).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
        }
        let leaf = conn.peer_certificates().and_then(|c| c.first()).ok_or("no certificate")?;
        Ok(leaf.as_ref().to_vec())
    }
}

/// A rustls client configuration (ring, no resumption) trusting `roots`.
pub fn client_config(roots: &[&[u8]], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for der in roots {
        store.add(CertificateDer::from(der.to_vec())).expect("adding a test root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("default versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

fn config(
    dir: &Path,
    root: &Path,
    http: SocketAddr,
    https: SocketAddr,
    certs: &[CertFiles],
    extra: &[&str],
) -> String {
    let q = crate::config::quote;
    let mut out =
        format!("listen = [{}]\nlisten_tls = [{}]\n", q(&http.to_string()), q(&https.to_string()));
    out.push_str(&format!("control_socket = {}\n", q(&dir.join("control.sock").to_string_lossy())));
    for line in extra.iter().filter_map(|l| l.strip_prefix("top:")) {
        out.push_str(line.trim());
        out.push('\n');
    }
    let tls_extra: String = extra
        .iter()
        .filter_map(|l| l.strip_prefix("tls:"))
        .map(|l| format!(", {}", l.trim()))
        .collect();
    for c in certs {
        let name = c.host.trim_end_matches(".localhost");
        out.push_str(&format!(
            "[[app]]\nname = {}\nhosts = [{}]\nroot = {}\nfastcgi = {}\ntls = {{ cert = {}, key = {}{tls_extra} }}\n",
            q(name),
            q(&c.host),
            q(&root.to_string_lossy()),
            q(&format!("unix:{}", dir.join(format!("{name}.sock")).display())),
            q(&c.cert.to_string_lossy()),
            q(&c.key.to_string_lossy()),
        ));
        for line in extra.iter().filter(|l| !l.starts_with("tls:") && !l.starts_with("top:")) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
