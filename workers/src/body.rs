//! Response bodies: a whole buffer, or a stream of chunks fed by a producer task.
//!
//! A streamed body ends cleanly only when its producer says so ([`Chunk::End`]); if
//! the producer fails, panics or is dropped first, the body ends with an error, so
//! hyper resets the HTTP/2 stream and the client sees an incomplete response, never a
//! clean end. This module must never turn a failed response into a complete one.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use tokio::sync::mpsc;

/// Chunks buffered between a producer and the HTTP/2 stream: the backpressure bound.
pub const CHANNEL_CHUNKS: usize = 8;

/// The body type of every response the worker sends.
pub type Body = BoxBody<Bytes, BodyError>;

/// A response body that ended before it was complete.
#[derive(Debug, thiserror::Error)]
#[error("response body aborted: {0}")]
pub struct BodyError(pub String);

/// What a producer sends down a response body made by [`channel`].
#[derive(Debug)]
pub enum Chunk {
    Data(Bytes),
    /// The body is complete.
    End,
    /// The body cannot be completed; the reason is logged, not sent.
    Fail(String),
}

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// A bounded channel and the body that drains it.
pub fn channel() -> (mpsc::Sender<Chunk>, Body) {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    (tx, ChannelBody { rx, next: None, done: false }.boxed())
}

/// A body fed chunk by chunk from an mpsc channel.
#[derive(Debug)]
struct ChannelBody {
    rx: mpsc::Receiver<Chunk>,
    /// A chunk taken early, while looking for the end behind a data chunk.
    next: Option<Chunk>,
    done: bool,
}

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let chunk = match self.next.take() {
            Some(chunk) => Some(chunk),
            None => ready!(self.rx.poll_recv(cx)),
        };
        let frame = match chunk {
            Some(Chunk::Data(bytes)) => {
                // When the end is already queued, say so with this chunk: the
                // last DATA frame then carries END_STREAM, with no empty frame after.
                match self.rx.try_recv() {
                    Ok(Chunk::End) => self.done = true,
                    Ok(next) => self.next = Some(next),
                    Err(_) => {}
                }
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            Some(Chunk::End) => None,
            Some(Chunk::Fail(why)) => Some(Err(BodyError(why))),
            None => Some(Err(BodyError("the producer stopped before the end".into()))),
        };
        self.done = true;
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ends_cleanly_only_on_end() {
        let (tx, body) = channel();
        tx.send(Chunk::Data("a".into())).await.expect("open");
        tx.send(Chunk::End).await.expect("open");
        assert_eq!(body.collect().await.expect("complete").to_bytes(), "a");
    }

    #[tokio::test]
    async fn a_queued_end_marks_the_last_chunk_as_the_end() {
        let (tx, mut body) = channel();
        tx.send(Chunk::Data("a".into())).await.expect("open");
        tx.send(Chunk::Data("b".into())).await.expect("open");
        tx.send(Chunk::End).await.expect("open");
        let first = body.frame().await.expect("a frame").expect("data");
        assert_eq!(first.into_data().expect("data"), "a");
        assert!(!body.is_end_stream());
        let last = body.frame().await.expect("a frame").expect("data");
        assert_eq!(last.into_data().expect("data"), "b");
        assert!(body.is_end_stream(), "the end was queued behind the last chunk");
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_dropped_producer_is_an_error() {
        let (tx, body) = channel();
        tx.send(Chunk::Data("a".into())).await.expect("open");
        drop(tx);
        assert!(body.collect().await.is_err());
    }

    #[tokio::test]
    async fn a_failure_is_an_error() {
        let (tx, body) = channel();
        tx.send(Chunk::Fail("backend reset".into())).await.expect("open");
        assert!(body.collect().await.is_err());
    }
}
