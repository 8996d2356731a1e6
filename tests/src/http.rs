//! A real HTTP client for tests: blocking reqwest over HTTP/1.1 or HTTP/2 with prior
//! knowledge (h2c), with every test host name resolved to the gateway's loopback address.
//!
//! Resolving names (rather than sending to 127.0.0.1 with a `Host` header) makes the
//! `Host` header for HTTP/1.1 and `:authority` for HTTP/2 come out right without tricks.
//! Proxies from the environment are ignored and redirects are not followed.

use reqwest::blocking::{Client as Inner, RequestBuilder};
use reqwest::header::HeaderMap;
use reqwest::{Method, Version};
use sha2::{Digest, Sha256};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// The longest a test request may take before it counts as a failure.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a body [`Reply`]'s `Debug` shows.
const DEBUG_BODY_LIMIT: usize = 2048;

/// Which protocol a [`Client`] speaks on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 over cleartext TCP, without an upgrade (prior knowledge).
    H2c,
}

impl Proto {
    /// The version every response on this protocol must carry.
    pub fn version(self) -> Version {
        match self {
            Self::Http1 => Version::HTTP_11,
            Self::H2c => Version::HTTP_2,
        }
    }
}

/// A client bound to one gateway address.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Inner,
    addr: SocketAddr,
}

impl Client {
    /// A client that sends requests for each of `hosts` to `addr`. It keeps at most one idle
    /// connection per host, so sequential requests from one client share one connection.
    pub fn new(addr: SocketAddr, proto: Proto, hosts: &[&str]) -> Self {
        let mut builder = Inner::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(1)
            .redirect(reqwest::redirect::Policy::none());
        for host in hosts {
            builder = builder.resolve(host, addr);
        }
        builder = match proto {
            Proto::Http1 => builder.http1_only(),
            Proto::H2c => builder.http2_prior_knowledge(),
        };
        let inner = builder.build().expect("building the HTTP client");
        Self { inner, addr }
    }

    /// `GET http://HOST:PORT/PATH`; panics if no response arrives.
    pub fn get(&self, host: &str, path: &str) -> Reply {
        self.send(self.request(Method::GET, host, path))
            .unwrap_or_else(|err| panic!("GET {host}{path}: {err:?}"))
    }

    /// `POST` with a body and content type; panics if no response arrives.
    pub fn post(&self, host: &str, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let request = self
            .request(Method::POST, host, path)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.send(request).unwrap_or_else(|err| panic!("POST {host}{path}: {err:?}"))
    }

    /// A request builder for `METHOD http://HOST:PORT/PATH`, to add headers or a body.
    pub fn request(&self, method: Method, host: &str, path: &str) -> RequestBuilder {
        let url = format!("http://{host}:{}{path}", self.addr.port());
        self.inner.request(method, url)
    }

    /// Sends a request and reads the whole response.
    pub fn send(&self, request: RequestBuilder) -> Result<Reply, reqwest::Error> {
        let response = request.send()?;
        let status = response.status().as_u16();
        let version = response.version();
        let headers = response.headers().clone();
        let body = response.bytes()?.to_vec();
        Ok(Reply { status, version, headers, body })
    }
}

/// A complete response.
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The protocol the response came over.
    pub version: Version,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the reply if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {self:?}"))
    }

    /// A header's value as text, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.body[..self.body.len().min(DEBUG_BODY_LIMIT)];
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("version", &self.version)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("body", &String::from_utf8_lossy(shown))
            .finish()
    }
}

/// `text` percent-encoded for a query component: letters, digits, `-_./` stay as they are.
pub fn query_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Lower-case hex SHA-256, as PHP's `hash('sha256', …)` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
