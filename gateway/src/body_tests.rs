use super::*;

use http::HeaderMap;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

#[test]
fn the_budget_refuses_past_its_total_and_frees_on_drop() {
    let budget = Budget::default();
    let shares: Vec<_> = (0..16)
        .map(|i| budget.reserve(ip(&format!("192.0.2.{i}")), BUFFER_PER_CLIENT).expect("a share"))
        .collect();
    assert_eq!(budget.held(), BUFFER_TOTAL);
    assert!(budget.reserve(ip("198.51.100.1"), 1).is_none(), "past the total");
    drop(shares);
    assert_eq!(budget.held(), 0);
    assert!(budget.reserve(ip("198.51.100.1"), 1).is_some());
}

#[test]
fn one_client_holds_at_most_its_share_and_others_are_unaffected() {
    let budget = Budget::default();
    let small = BUFFER_MAX as usize;
    let mine: Vec<_> = (0..BUFFER_PER_CLIENT / small)
        .map(|_| budget.reserve(ip("203.0.113.9"), small).expect("within the share"))
        .collect();
    assert!(budget.reserve(ip("203.0.113.9"), 1).is_none(), "past the client's share");
    // The same client by its IPv4-mapped address, and another host in its IPv6 /64.
    assert!(budget.reserve(ip("::ffff:203.0.113.9"), 1).is_none());
    let v6: Vec<_> = (0..BUFFER_PER_CLIENT / small)
        .map(|i| budget.reserve(ip(&format!("2001:db8:1:2::{i:x}")), small).expect("share"))
        .collect();
    assert!(budget.reserve(ip("2001:db8:1:2:ffff::1"), 1).is_none(), "same /64");
    assert!(budget.reserve(ip("2001:db8:1:3::1"), small).is_some(), "another /64");
    assert!(budget.reserve(ip("203.0.113.10"), small).is_some(), "another client");
    drop(mine);
    assert!(budget.reserve(ip("203.0.113.9"), small).is_some(), "freed on drop");
    drop(v6);
}

#[test]
fn clients_are_counted_by_ipv4_address_or_ipv6_slash_64() {
    for (addr, key) in [
        ("192.0.2.1", "192.0.2.1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("2001:db8:aa:bb:cc:dd:ee:ff", "2001:db8:aa:bb::"),
        ("::1", "::"),
        ("fe80::1", "fe80::"),
    ] {
        assert_eq!(client_key(ip(addr)), ip(key), "{addr}");
    }
}

/// A small body that trickles in, each byte well within `client_body_timeout` of the
/// last, but the whole slower than it, fails with 408's error instead of holding its
/// share of the budget for as long as the client likes.
#[tokio::test(start_paused = true)]
async fn a_small_body_must_arrive_whole_within_the_timeout() {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let budget = Arc::new(Budget::default());
    let seen = Arc::clone(&budget);
    let service = service_fn(move |req: http::Request<Incoming>| {
        let tx = tx.lock().expect("one request").take();
        let budget = Arc::clone(&budget);
        async move {
            let reading = Reading { timeout: Duration::from_secs(2), max_body: None };
            let fault = Fault::default();
            let client = ip("192.0.2.7");
            let result = prepare(req.into_body(), reading, client, &budget, &fault).await;
            if let Some(tx) = tx {
                let _ = tx.send((result.err(), fault.get().cloned()));
            }
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
        }
    });
    tokio::spawn(async move {
        let conn = hyper::server::conn::http1::Builder::new();
        let _ = conn.serve_connection(TokioIo::new(server), service).await;
    });
    client
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
        .await
        .expect("head");
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if client.write_all(b"x").await.is_err() {
                break;
            }
        }
        client
    });
    let (err, recorded) = rx.await.expect("the service ran");
    assert_eq!(err, Some(BodyError::TooSlow(Duration::from_secs(2))));
    assert_eq!(recorded, Some(BodyError::TooSlow(Duration::from_secs(2))));
    assert_eq!(seen.held(), 0, "the reservation is given back");
    trickle.abort();
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
            let outcome =
                match prepare(req.into_body(), reading, ip("192.0.2.1"), &budget, &fault).await {
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
