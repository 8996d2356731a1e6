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

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

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

/// Broker → gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum ToGateway {
    /// First message: `listeners` inherited TCP listening sockets follow as fds.
    Init { listeners: u8, limits: GatewayLimits, sandbox: Profile },
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
}

impl Message for ToGateway {
    fn fds(&self) -> usize {
        match self {
            Self::Init { listeners, .. } => usize::from(*listeners),
            Self::Channel { .. } => 1,
            Self::Route(_)
            | Self::RemoveApp { .. }
            | Self::Retire { .. }
            | Self::Start
            | Self::Shutdown { .. } => 0,
        }
    }
}

/// Limits the gateway enforces on client traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayLimits {
    /// The most bytes of request headers (names + values) accepted; more gets 431.
    pub max_header_bytes: usize,
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
    /// The largest request body accepted; more gets 413.
    pub max_body: u64,
    /// The longest wait for the backend (connect, first byte, between bytes), in ms; then 504.
    pub timeout_ms: u64,
    /// On-demand apps: a worker with no request for this long reports [`ToBroker::Idle`].
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
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
        });
        let bytes = encode(&msg).expect("small message encodes");
        assert_eq!(decode::<ToGateway>(&bytes).expect("decodes"), msg);
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
            },
            secrets: vec![("DB_PASSWORD".into(), Secret::new("s3cret".into()))],
            sandbox: Profile::default(),
        };
        let msg = ToWorker::Init(Box::new(init));
        assert!(!format!("{msg:?}").contains("s3cret"));
        let back: ToWorker = decode(&encode(&msg).expect("encodes")).expect("decodes");
        assert_eq!(back, msg);
    }
}
