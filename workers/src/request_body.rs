//! Buffers a request body in memory, up to the app's limit, before the backend is contacted.
//!
//! php-fpm needs an exact CONTENT_LENGTH and hangs on short bodies, so the whole body is
//! read first and its real length is what the backend is told. This module must never
//! hold more than the limit: a declared or counted excess is refused at once.

use bytes::{Bytes, BytesMut};
use http_body::Body as HttpBody;
use http_body_util::BodyExt;

/// Why a request body could not be buffered.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    #[error("request body exceeds the {max}-byte limit")]
    TooLarge { max: u64 },
    #[error("request body could not be read: {0}")]
    Read(String),
}

/// Reads all of `body`; `declared` is the Content-Length, if the client sent one.
pub async fn buffer<B>(
    mut body: B,
    declared: Option<u64>,
    max: u64,
) -> Result<Bytes, RequestBodyError>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    if declared.is_some_and(|len| len > max) {
        return Err(RequestBodyError::TooLarge { max });
    }
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| RequestBodyError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if (buf.len() + data.len()) as u64 > max {
            return Err(RequestBodyError::TooLarge { max });
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;

    use super::*;

    #[tokio::test]
    async fn buffers_up_to_the_limit() {
        let got = buffer(Full::new(Bytes::from_static(b"12345")), None, 5).await.expect("fits");
        assert_eq!(got, "12345");
    }

    #[tokio::test]
    async fn refuses_a_counted_or_declared_excess() {
        let counted = buffer(Full::new(Bytes::from_static(b"123456")), None, 5).await;
        assert!(matches!(counted, Err(RequestBodyError::TooLarge { max: 5 })));
        let declared = buffer(Full::new(Bytes::new()), Some(6), 5).await;
        assert!(matches!(declared, Err(RequestBodyError::TooLarge { max: 5 })));
    }
}
