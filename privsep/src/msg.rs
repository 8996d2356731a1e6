//! Typed control messages between the broker and its children, and their codec.
//!
//! The codec does no I/O: [`encode`] turns a message into bytes, [`decode`]
//! turns bytes into a message or an error. A message's length is checked
//! against [`MAX_MESSAGE`] before anything is parsed; unknown variants,
//! unknown fields and trailing bytes are errors. Each message says how many
//! descriptors travel with it ([`Message::fds`]), and the receiver rejects a
//! datagram whose descriptor count differs.
//!
//! The broker decodes only [`ToBroker`] from children and treats every one of
//! them as possibly compromised: the allow-list is this enum.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::keyproto::KeyKind;
use crate::sandbox::Profile;
use crate::secret::Secret;

/// The largest encoded control message, in bytes (fits one `SOCK_SEQPACKET` datagram).
pub const MAX_MESSAGE: usize = 60 * 1024;
/// The most descriptors one message may carry.
pub const MAX_FDS: usize = 16;

/// Why bytes could not become a message.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("control message of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("malformed control message: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// A control message type: how many descriptors accompany it.
pub trait Message: Serialize + DeserializeOwned {
    /// The exact number of descriptors that must travel with this message.
    fn fds(&self) -> usize;
}

/// Encodes a message; fails only if it would exceed [`MAX_MESSAGE`].
pub fn encode<M: Message>(msg: &M) -> Result<Vec<u8>, CodecError> {
    let bytes = serde_json::to_vec(msg)?;
    check_len(bytes.len())?;
    Ok(bytes)
}

/// Decodes one message from exactly `bytes` (trailing bytes are an error).
pub fn decode<M: Message>(bytes: &[u8]) -> Result<M, CodecError> {
    check_len(bytes.len())?;
    Ok(serde_json::from_slice(bytes)?)
}

fn check_len(len: usize) -> Result<(), CodecError> {
    if len > MAX_MESSAGE {
        return Err(CodecError::TooLarge { len, max: MAX_MESSAGE });
    }
    Ok(())
}

/// How the gateway writes access-log lines (`access_log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    /// nginx's `combined`: `$remote_addr - $remote_user [$time_local] "$request" $status
    /// $body_bytes_sent "$http_referer" "$http_user_agent"`.
    Combined,
    /// One JSON object a line, with every field (app, protocol, TLS, request time).
    Json,
}

/// Broker → gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum ToGateway {
    /// First message: `listeners` plain-HTTP then `tls_listeners` TLS
    /// listening sockets follow as fds, in that order, then, with `access_log`, the
    /// write end of the access-log pipe (non-blocking).
    Init {
        listeners: u8,
        #[serde(default)]
        tls_listeners: u8,
        limits: GatewayLimits,
        sandbox: Profile,
        #[serde(default)]
        access_log: Option<AccessLogFormat>,
    },
    /// An app and the hosts it answers to; replaces the app's earlier routes (no fd).
    Route(Route),
    /// Forget an app: its routes and channels (no fd).
    RemoveApp { app: String },
    /// A connected stream to a worker of `app` (one fd), of config `generation`.
    Channel { app: String, generation: u64 },
    /// Stop using `app`'s channels older than generation `below` (in-flight
    /// requests on them finish). `below = u64::MAX` retires every channel.
    Retire { app: String, below: u64 },
    /// All routes and channels are known: start accepting.
    Start,
    /// Stop accepting, finish in-flight requests within `deadline_ms`, exit.
    Shutdown { deadline_ms: u64 },
    /// An app's certificate chain and HTTPS options; replaces the earlier ones (no fd).
    Tls(Box<AppTls>),
    /// The app no longer has a certificate (no fd).
    NoTls { app: String },
    /// A new signing channel to the keyholder (one fd); replaces the previous one.
    /// `serial` names that keyholder in [`ToBroker::KeyholderBroken`].
    Keyholder { serial: u64 },
}

impl Message for ToGateway {
    fn fds(&self) -> usize {
        match self {
            Self::Init { listeners, tls_listeners, access_log, .. } => {
                usize::from(*listeners)
                    + usize::from(*tls_listeners)
                    + usize::from(access_log.is_some())
            }
            Self::Channel { .. } | Self::Keyholder { .. } => 1,
            Self::Route(_)
            | Self::RemoveApp { .. }
            | Self::Retire { .. }
            | Self::Start
            | Self::Shutdown { .. }
            | Self::Tls(_)
            | Self::NoTls { .. } => 0,
        }
    }
}

/// One app's certificate chain (public data) and HTTPS options, for the gateway.
///
/// The private key never travels here: the gateway signs through the
/// keyholder, naming the key by the SHA-256 of the leaf's public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppTls {
    pub app: String,
    /// DER certificates, leaf first.
    pub chain: Vec<Vec<u8>>,
    /// The kind of the leaf's key, which decides the schemes offered.
    pub key: KeyKind,
    /// The certificate is offered to TLS 1.3 handshakes only (`min_version = "1.3"`).
    #[serde(default)]
    pub tls13_only: bool,
    /// Served when SNI matches no app (or is absent).
    #[serde(default)]
    pub default: bool,
    /// Plain-HTTP requests for the app's hosts get a 308 to `https://`.
    #[serde(default)]
    pub redirect_https: bool,
    /// `Strict-Transport-Security` value added to the app's HTTPS responses.
    #[serde(default)]
    pub hsts: Option<String>,
}

/// Broker → keyholder. The keyholder's only peer that may configure it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum ToKeyholder {
    /// First message: the sandbox, how many [`ToKeyholder::Key`]s follow, and the most
    /// signatures a second one signing channel (one gateway) gets, with a burst of as
    /// many; requests beyond it are answered with a failure (`0`: the default,
    /// [`DEFAULT_SIGNATURES_PER_SECOND`]).
    Init {
        keys: u16,
        sandbox: Profile,
        #[serde(default)]
        signatures_per_second: u32,
    },
    /// One private key (one message each, to stay under [`MAX_MESSAGE`]).
    Key(PrivateKey),
    /// A gateway's signing channel (one fd); allowed only after every key.
    Channel,
}

impl Message for ToKeyholder {
    fn fds(&self) -> usize {
        match self {
            Self::Init { .. } | Self::Key(_) => 0,
            Self::Channel => 1,
        }
    }
}

/// A channel's signatures per second when the broker names no other rate.
pub const DEFAULT_SIGNATURES_PER_SECOND: u32 = 1000;

/// A private key as the broker read it from its PEM file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateKey {
    pub format: KeyFormat,
    pub der: KeyBytes,
    /// Sign TLS 1.3 CertificateVerify inputs only, never a TLS 1.2
    /// ServerKeyExchange (`min_version = "1.3"`).
    #[serde(default)]
    pub tls13_only: bool,
}

/// The DER encodings the keyholder accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyFormat {
    Pkcs8,
    /// `EC PRIVATE KEY` (RFC 5915).
    Sec1,
    /// `RSA PRIVATE KEY`.
    Pkcs1,
}

/// Private key bytes: printed as `***`, zeroed on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(transparent)]
pub struct KeyBytes(Vec<u8>);

impl KeyBytes {
    /// Wraps key bytes; the caller's copy should be the one moved in.
    pub fn new(der: Vec<u8>) -> Self {
        Self(der)
    }

    /// The key itself, for the keyholder to parse.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Limits the gateway enforces on client traffic (nginx's names in each field's doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayLimits {
    /// The most bytes of a request head (`client_max_header_size`; nginx's
    /// `large_client_header_buffers`); more gets 431.
    pub max_header_bytes: usize,
    /// The longest wait between two reads of a request body (nginx's
    /// `client_body_timeout`), in ms; then 408 Request Timeout.
    pub client_body_timeout_ms: u64,
    /// How long a connection may take to begin its first request, TLS handshake
    /// included (`client_header_timeout`), in ms.
    pub client_header_timeout_ms: u64,
    /// How long a connection without a request in progress may stay idle
    /// (`keepalive_timeout`), in ms.
    pub keepalive_timeout_ms: u64,
    /// How long a client may take no response byte (`send_timeout`), in ms.
    pub send_timeout_ms: u64,
    /// Client connections open at once (nginx's `worker_connections`).
    pub max_connections: u32,
    /// Client connections open at once from one address (nginx's `limit_conn`).
    pub max_connections_per_client: u32,
}

impl Default for GatewayLimits {
    /// nginx's defaults where nginx has one.
    fn default() -> Self {
        Self {
            max_header_bytes: 60 * 1024,
            client_body_timeout_ms: 60_000,
            client_header_timeout_ms: 60_000,
            keepalive_timeout_ms: 75_000,
            send_timeout_ms: 60_000,
            max_connections: 16_384,
            max_connections_per_client: 4_096,
        }
    }
}

/// Host patterns routed to one app: exact names or `*.suffix` wildcards, lower case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub app: String,
    pub hosts: Vec<String>,
    /// No worker runs until the first request: the gateway asks the broker
    /// for a channel ([`ToBroker::NeedChannel`]) and holds the request.
    #[serde(default)]
    pub on_demand: bool,
    /// The path prefix the app is mounted under on every one of its hosts:
    /// `/` (the whole host) or `/segment/…/`.
    #[serde(default = "root_prefix")]
    pub prefix: String,
    /// The app's `max_body`: the gateway refuses a longer body (413) before it reads
    /// a byte of it, and ends a streamed one that passes it. `None`: the worker alone checks.
    #[serde(default)]
    pub max_body: Option<u64>,
}

/// The prefix of an app that owns its hosts' whole path space.
pub fn root_prefix() -> String {
    "/".to_owned()
}

/// Broker → worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum ToWorker {
    /// The app to serve and its secrets; one fd follows: the channel to the gateway.
    Init(Box<WorkerInit>),
    /// One more channel from the gateway (one fd), e.g. after a gateway restart.
    Channel,
    /// Finish the requests on every channel, then exit; accept no new channel.
    Drain,
}

impl Message for ToWorker {
    fn fds(&self) -> usize {
        match self {
            Self::Init(_) | Self::Channel => 1,
            Self::Drain => 0,
        }
    }
}

/// Everything a worker knows about its app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerInit {
    pub app: AppSpec,
    /// `(param name, value)`: become FastCGI params of this app only.
    pub secrets: Vec<(String, Secret)>,
    /// The sandbox the worker applies before serving.
    pub sandbox: Profile,
}

/// One app's request-handling configuration, as validated by the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    pub name: String,
    /// The canonical host name (the first of `hosts`), sent as SERVER_NAME.
    pub server_name: String,
    /// The document root, absolute.
    pub root: PathBuf,
    pub index: Vec<String>,
    /// Path of the script that handles every request that matches no file.
    pub front_controller: Option<String>,
    pub fastcgi: Backend,
    /// Keep-alive connections to `fastcgi` a worker may hold open, busy or idle; 0
    /// opens one per request.
    #[serde(default)]
    pub fastcgi_keepalive: u32,
    /// The largest request body accepted; more gets 413.
    pub max_body: u64,
    /// The longest wait for the backend (connect, first byte, between bytes), in ms; then 504.
    pub timeout_ms: u64,
    /// On-demand apps: a worker with no request for this long reports [`ToBroker::Idle`].
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    /// The path prefix the app is mounted under (`/` or `/blog/`): stripped to find
    /// files, kept in SCRIPT_NAME and REQUEST_URI.
    #[serde(default = "root_prefix")]
    pub prefix: String,
    /// Peers whose `X-Forwarded-For`/`X-Forwarded-Proto` are believed.
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
    /// Canonical directories outside `root` that symlinks under it may lead to
    /// (`public/storage` → `storage/app/public`); mounted read-only for the worker.
    #[serde(default)]
    pub symlink_targets: Vec<PathBuf>,
    /// Extra FastCGI params, by name; never one Bulkhead sets itself or a secret's.
    #[serde(default)]
    pub fastcgi_params: Vec<(String, String)>,
    /// The app's rules, in configuration order; evaluated by the worker.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// Content types, charset and compression of the app's responses.
    #[serde(default)]
    pub responses: ResponseSpec,
}

/// How the worker labels and encodes responses (nginx's `types`, `charset`, `gzip`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    /// `types`: extension (lowercase, without the dot) to Content-Type, checked first.
    #[serde(default)]
    pub types: Vec<(String, String)>,
    /// `charset`: added to text/html, text/plain and nginx's other `charset_types`.
    #[serde(default)]
    pub charset: Option<String>,
    #[serde(default)]
    pub compress: CompressSpec,
}

/// `compress`: which codings the worker may apply, and from what size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressSpec {
    #[serde(default = "yes")]
    pub gzip: bool,
    #[serde(default = "yes")]
    pub brotli: bool,
    /// Bodies of a known length below this are sent as they are (nginx's `gzip_min_length`).
    #[serde(default = "default_min_length")]
    pub min_length: u64,
}

impl CompressSpec {
    /// `compress = false`.
    pub fn off() -> Self {
        Self { gzip: false, brotli: false, min_length: default_min_length() }
    }
}

impl Default for CompressSpec {
    fn default() -> Self {
        Self { gzip: true, brotli: true, min_length: default_min_length() }
    }
}

fn yes() -> bool {
    true
}

/// Bodies smaller than this gain little from compression and can grow.
pub const fn default_min_length() -> u64 {
    256
}

/// One `[[app.rules]]` entry: which request paths it matches and what it does there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub matcher: RuleMatch,
    pub action: RuleAction,
}

/// What a rule matches: the decoded, normalised path below the app's mount prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleMatch {
    /// Any of these string prefixes (nginx's prefix `location`).
    Prefix(Vec<String>),
    /// Any of these globs (`*` stays within a segment, `**` crosses them).
    Glob(Vec<String>),
    /// A regular expression (`regex` crate syntax), unanchored like nginx's `~`.
    Regex(String),
}

/// What a rule does to a matching request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleAction {
    /// Answer with this status (4xx) and nothing else.
    Deny(u16),
    /// A script under the match is never run: this status (4xx) instead.
    NoScripts(u16),
    /// Served only through a script's `X-Accel-Redirect` (nginx's `internal`); else 404.
    Internal,
    /// Rewrite the path (captures `$1`..`$9`), optionally with a query; `fallback`:
    /// only when no file or directory matches (a `try_files` named location).
    Rewrite { target: String, fallback: bool },
    /// Set these response headers on successful responses.
    Headers(Vec<(String, String)>),
}

/// An address block such as `10.0.0.0/8`; the address has no bits past the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl Cidr {
    /// Parses `ip/len` (or a bare ip: one address); host bits must be zero.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (ip, len) = text.split_once('/').map_or((text, None), |(ip, len)| (ip, Some(len)));
        let addr: IpAddr =
            ip.parse().map_err(|_| format!("{text:?} is not an IP address block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            None => max,
            Some(len) => len.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(|| {
                format!("{text:?}: the prefix length must be a number from 0 to {max}")
            })?,
        };
        let cidr = Self { addr, prefix_len };
        match cidr.network_bits(addr) == bits(addr) {
            true => Ok(cidr),
            false => Err(format!("{text:?} has bits set after the prefix length")),
        }
    }

    /// Whether `ip` is inside the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.addr.is_ipv4() && self.network_bits(ip) == self.network_bits(self.addr)
    }

    fn network_bits(&self, ip: IpAddr) -> u128 {
        let width: u32 = if ip.is_ipv4() { 32 } else { 128 };
        let host = width - u32::from(self.prefix_len);
        let mask = if host >= 128 { 0 } else { u128::MAX << host };
        bits(ip) & mask
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Where an app's FastCGI server listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Backend {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// Broker → pool launcher (`bulkhead-pool`), which sandboxes itself and runs php-fpm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum ToPool {
    /// What to run and how; one fd follows: the listening FastCGI socket, which the
    /// broker created and keeps, so a restarted pool is reached on the same socket.
    Init(Box<PoolInit>),
    /// Stop gracefully: php-fpm finishes its requests (SIGQUIT), then the launcher exits.
    Drain,
}

impl Message for ToPool {
    fn fds(&self) -> usize {
        match self {
            Self::Init(_) => 1,
            Self::Drain => 0,
        }
    }
}

/// A managed php-fpm pool: the program, its generated configuration and its sandbox.
/// Holds no secret: those travel with each request, from the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolInit {
    pub app: String,
    /// The php-fpm binary, absolute.
    pub binary: PathBuf,
    /// The configuration file the broker wrote (visible read-only in the sandbox).
    pub config: PathBuf,
    /// The path the listening socket is bound to (php-fpm matches its `listen` against it).
    pub socket: PathBuf,
    /// Whether PHP may run programs; if not, php-fpm is the last program exec'd.
    pub programs: bool,
    /// The sandbox applied before php-fpm's first instruction.
    pub sandbox: Profile,
}

/// Child → broker: the whole allow-list of what a child may say.
///
/// The broker checks each message against the sender's role as well: only
/// the gateway may ask for channels, only a worker may report itself idle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum ToBroker {
    /// Initialised and serving.
    Ready,
    /// Gateway: a request is waiting for `app`, which has no live channel.
    NeedChannel { app: String },
    /// Worker: no request for the app's idle timeout; it may be stopped.
    Idle,
    /// Worker: its Unix backend socket refuses or is missing (php-fpm restarted):
    /// a fresh worker, with a fresh view of the socket, is needed.
    BackendStale,
    /// Gateway: the signing channel to keyholder `serial` failed (no answer within the
    /// deadline, closed, malformed answer); a keyholder that is alive but stuck is only
    /// replaced on this report.
    KeyholderBroken { serial: u64 },
    /// Gateway: a channel of `app`, of config `generation`, failed or was closed by its
    /// worker while still in use (not retired); the broker hands out a replacement to a
    /// live worker of that generation, at most one per app per short interval.
    ChannelLost { app: String, generation: u64 },
}

impl Message for ToBroker {
    fn fds(&self) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_route() {
        let msg = ToGateway::Route(Route {
            app: "blog".into(),
            hosts: vec!["*.blog.localhost".into()],
            on_demand: false,
            prefix: "/blog/".into(),
            max_body: Some(1 << 20),
        });
        let bytes = encode(&msg).expect("small message encodes");
        assert_eq!(decode::<ToGateway>(&bytes).expect("decodes"), msg);
    }

    #[test]
    fn cidr_blocks_parse_and_match() {
        let ten = Cidr::parse("10.0.0.0/8").expect("valid");
        assert!(ten.contains("10.1.2.3".parse().expect("ip")));
        assert!(ten.contains("::ffff:10.9.9.9".parse().expect("ip")));
        assert!(!ten.contains("11.0.0.1".parse().expect("ip")));
        let one = Cidr::parse("127.0.0.1").expect("valid");
        assert!(one.contains("127.0.0.1".parse().expect("ip")));
        assert!(!one.contains("127.0.0.2".parse().expect("ip")));
        assert!(Cidr::parse("0.0.0.0/0").expect("valid").contains("8.8.8.8".parse().expect("ip")));
        assert!(Cidr::parse("fd00::/8").expect("valid").contains("fd12::1".parse().expect("ip")));
        for bad in ["10.0.0.1/8", "10.0.0.0/33", "x/8", "10.0.0.0/", "::1/129"] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn routes_without_a_prefix_still_decode() {
        let old = br#"{"Route":{"app":"a","hosts":["a.localhost"]}}"#;
        let Ok(ToGateway::Route(route)) = decode::<ToGateway>(old) else { panic!("decodes") };
        assert_eq!(route.prefix, "/");
    }

    #[test]
    fn private_keys_survive_the_codec_but_not_debug() {
        let der = KeyBytes::new(b"private-key-bytes".to_vec());
        let msg = ToKeyholder::Key(PrivateKey { format: KeyFormat::Pkcs8, der, tls13_only: false });
        assert!(!format!("{msg:?}").contains("private-key-bytes"));
        let back: ToKeyholder = decode(&encode(&msg).expect("encodes")).expect("decodes");
        assert_eq!(back, msg);
        assert_eq!(ToKeyholder::Channel.fds(), 1);
        let init = ToGateway::Init {
            listeners: 2,
            tls_listeners: 1,
            limits: GatewayLimits { max_header_bytes: 1, ..GatewayLimits::default() },
            sandbox: Profile::default(),
            access_log: None,
        };
        assert_eq!(init.fds(), 3);
        let ToGateway::Init { mut access_log, .. } = init.clone() else { unreachable!() };
        access_log.get_or_insert(AccessLogFormat::Json);
        let logged = ToGateway::Init {
            listeners: 2,
            tls_listeners: 1,
            limits: GatewayLimits::default(),
            sandbox: Profile::default(),
            access_log,
        };
        assert_eq!(logged.fds(), 4, "the access-log pipe follows the listeners");
    }

    #[test]
    fn rejects_oversized_input_before_parsing() {
        let bytes = vec![b' '; MAX_MESSAGE + 1];
        assert!(matches!(decode::<ToBroker>(&bytes), Err(CodecError::TooLarge { .. })));
    }

    #[test]
    fn rejects_unknown_variants_and_trailing_bytes() {
        assert!(decode::<ToBroker>(br#""Shutdown""#).is_err());
        assert!(decode::<ToBroker>(br#""Ready"x"#).is_err());
        assert!(decode::<ToBroker>(br#""Ready""#).is_ok());
    }

    #[test]
    fn secrets_survive_the_codec_but_not_debug() {
        let init = WorkerInit {
            app: AppSpec {
                name: "a".into(),
                server_name: "a.localhost".into(),
                root: "/srv/a".into(),
                index: vec!["index.php".into()],
                front_controller: None,
                fastcgi: Backend::Unix("/run/a.sock".into()),
                max_body: 1,
                timeout_ms: 1,
                idle_timeout_ms: None,
                fastcgi_keepalive: 0,
                prefix: root_prefix(),
                trusted_proxies: vec![Cidr::parse("10.0.0.0/8").expect("valid block")],
                symlink_targets: vec!["/srv/a-storage".into()],
                fastcgi_params: vec![("APP_ENV".into(), "prod".into())],
                rules: vec![RuleSpec {
                    matcher: RuleMatch::Regex("^/wiki/(.*)".into()),
                    action: RuleAction::Rewrite {
                        target: "/index.php?title=$1".into(),
                        fallback: false,
                    },
                }],
                responses: ResponseSpec {
                    types: vec![("ext".into(), "text/x-ext".into())],
                    charset: Some("utf-8".into()),
                    compress: CompressSpec { brotli: false, ..CompressSpec::default() },
                },
            },
            secrets: vec![("DB_PASSWORD".into(), Secret::new("s3cret".into()))],
            sandbox: Profile::default(),
        };
        let msg = ToWorker::Init(Box::new(init));
        assert!(!format!("{msg:?}").contains("s3cret"));
        let back: ToWorker = decode(&encode(&msg).expect("encodes")).expect("decodes");
        assert_eq!(back, msg);
    }

    /// xorshift64: deterministic bytes without a dependency.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn decode_all(bytes: &[u8]) {
        let _ = decode::<ToBroker>(bytes);
        let _ = decode::<ToGateway>(bytes);
        let _ = decode::<ToWorker>(bytes);
    }

    #[test]
    fn random_and_mutated_bytes_never_panic_a_decoder() {
        let valid: Vec<Vec<u8>> = [
            encode(&ToBroker::NeedChannel { app: "blog".into() }),
            encode(&ToBroker::Idle),
            encode(&ToBroker::ChannelLost { app: "blog".into(), generation: 3 }),
            encode(&ToGateway::Retire { app: "blog".into(), below: u64::MAX }),
            encode(&ToGateway::Shutdown { deadline_ms: 30_000 }),
            encode(&ToWorker::Drain),
        ]
        .into_iter()
        .map(|m| m.expect("small messages encode"))
        .chain([
            br#"{"Route":{"app":"blog","hosts":["*.blog.localhost"],"on_demand":true}}"#.to_vec()
        ])
        .collect();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..10_000 {
            let len = (xorshift(&mut state) % 300) as usize;
            let random: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8).collect();
            decode_all(&random);
            let base = &valid[(xorshift(&mut state) % valid.len() as u64) as usize];
            let cut = (xorshift(&mut state) as usize) % (base.len() + 1);
            decode_all(&base[..cut]);
            let mut mutated = base.clone();
            for _ in 0..1 + xorshift(&mut state) % 4 {
                let at = (xorshift(&mut state) as usize) % mutated.len();
                mutated[at] = xorshift(&mut state) as u8;
            }
            decode_all(&mutated);
        }
        let deep = [b"[".repeat(10_000), b"{\"Route\":".repeat(5_000)];
        deep.iter().for_each(|bytes| decode_all(bytes));
    }
}
