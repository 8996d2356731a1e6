use super::*;

use http::HeaderMap;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn the_budget_refuses_past_its_total_and_frees_on_drop() {
    let budget = Budget::default();
    let most = budget.reserve(BUFFER_TOTAL).expect("the whole budget");
    assert!(budget.reserve(1).is_none());
    drop(most);
    assert!(budget.reserve(1).is_some());
}

/// What became of a body: its bytes and trailers, or why it failed (as prepared and as
/// recorded in its [`Fault`]).
#[derive(Debug, PartialEq)]
enum Outcome {
    Read(Vec<u8>, Option<HeaderMap>),
    Failed(BodyError, Option<BodyError>),
}

/// Sends `raw` (a whole HTTP/1.1 request) to a hyper server over an in-memory pipe and
/// reads the request's body the way the gateway does, with `max_body`.
async fn read_body(raw: Vec<u8>, max_body: Option<u64>) -> Outcome {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let service = service_fn(move |req: http::Request<Incoming>| {
        let tx = tx.lock().expect("one request at a time").take();
        async move {
            let reading = Reading { timeout: Duration::from_secs(5), max_body };
            let (budget, fault) = (Budget::default(), Fault::default());
            let outcome = match prepare(req.into_body(), reading, &budget, &fault).await {
                Err(e) => Outcome::Failed(e, fault.get().cloned()),
                Ok(body) => match body.collect().await {
                    Ok(all) => {
                        let trailers = all.trailers().cloned();
                        Outcome::Read(all.to_bytes().to_vec(), trailers)
                    }
                    Err(e) => {
                        let e = e.downcast::<BodyError>().expect("a streamed body's error");
                        Outcome::Failed(*e, fault.get().cloned())
                    }
                },
            };
            if let Some(tx) = tx {
                let _ = tx.send(outcome);
            }
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
        }
    });
    tokio::spawn(async move {
        let mut conn = hyper::server::conn::http1::Builder::new();
        // The test ends its request by half-closing; the service must still finish.
        conn.half_close(true);
        let _ = conn.serve_connection(TokioIo::new(server), service).await;
    });
    let (mut read, mut write) = tokio::io::split(client);
    write.write_all(&raw).await.expect("writing the request");
    write.shutdown().await.expect("ending the request");
    tokio::spawn(async move { read.read_to_end(&mut Vec::new()).await });
    tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("the body is read or fails in time")
        .expect("the service ran")
}

fn chunked(body: &str) -> Vec<u8> {
    let head = "POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n";
    format!("{head}{body}").into_bytes()
}

fn is_client(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Failed(BodyError::Client(_), Some(BodyError::Client(_)))
            | Outcome::Failed(BodyError::Client(_), None)
    )
}

#[tokio::test]
async fn every_malformed_chunked_body_is_the_clients_error() {
    let cases = [
        " 5\r\nhello\r\n0\r\n\r\n",
        "\t5\r\nhello\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        "+5\r\nhello\r\n0\r\n\r\n",
        "-5\r\nhello\r\n0\r\n\r\n",
        "10000000000000000\r\nhello\r\n0\r\n\r\n",
        "5\r\nhelloXX\r\n0\r\n\r\n",
        "5\r\nhello0\r\n\r\n",
        "5\rhello\r\n0\r\n\r\n",
        "5\r\rhello\r\n0\r\n\r\n",
        "5\nhello\r\n0\r\n\r\n",
        "5;a\nhello\r\n0\r\n\r\n",
        "5 5\r\nhello\r\n0\r\n\r\n",
        "\r\nhello\r\n0\r\n\r\n",
        "5\r\nhel",
        "5\r\nhello\r\n0\r\nbad trailer\r\n\r\n",
    ];
    for case in cases {
        let outcome = read_body(chunked(case), None).await;
        assert!(is_client(&outcome), "{case:?}: {outcome:?}");
    }
}

#[tokio::test]
async fn chunk_extensions_within_bounds_and_trailers_are_read() {
    let cases = [
        "5;a=b\r\nhello\r\n0\r\n\r\n",
        "5;a=\"b c\";d\r\nhello\r\n0\r\n\r\n",
        "5 \r\nhello\r\n0\r\n\r\n",
        "5 ;a=b\r\nhello\r\n0\r\n\r\n",
        "2\r\nhe\r\n3\r\nllo\r\n0;last\r\n\r\n",
        "00005\r\nhello\r\n0\r\n\r\n",
    ];
    for case in cases {
        let outcome = read_body(chunked(case), None).await;
        assert_eq!(outcome, Outcome::Read(b"hello".to_vec(), None), "{case:?}");
    }
    let many = format!("5{}\r\nhello\r\n0\r\n\r\n", ";x=y".repeat(1000));
    assert!(matches!(read_body(chunked(&many), None).await, Outcome::Read(..)));
}

#[tokio::test]
async fn forbidden_trailer_fields_never_reach_the_worker() {
    let body = "5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\
                Content-Length: 1\r\nHost: b.test\r\nX-Bulkhead-Peer: 6.6.6.6:1\r\n\r\n";
    assert_eq!(read_body(chunked(body), None).await, Outcome::Read(b"hello".to_vec(), None));
    let kept = "5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\nX-Checksum: abc\r\n\r\n";
    let Outcome::Read(bytes, Some(trailers)) = read_body(chunked(kept), None).await else {
        panic!("no trailers kept");
    };
    assert_eq!(bytes, b"hello");
    let names: Vec<&str> = trailers.keys().map(http::HeaderName::as_str).collect();
    assert_eq!(names, ["x-checksum"]);
}

#[tokio::test]
async fn max_body_is_checked_by_length_before_reading_and_while_streaming() {
    let long = b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 11\r\n\r\nhello world".to_vec();
    let too_large = Outcome::Failed(BodyError::TooLarge(10), Some(BodyError::TooLarge(10)));
    assert_eq!(read_body(long.clone(), Some(10)).await, too_large);
    assert_eq!(read_body(long, Some(11)).await, Outcome::Read(b"hello world".to_vec(), None));
    let streamed = chunked("6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n");
    assert_eq!(read_body(streamed.clone(), Some(10)).await, too_large);
    let read = read_body(streamed, Some(11)).await;
    assert_eq!(read, Outcome::Read(b"hello world".to_vec(), None));
}
