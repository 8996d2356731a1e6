use super::*;

fn parse(block: &[u8]) -> (Head, Bytes) {
    HeadBuffer::default().push(block).expect("valid").expect("complete")
}

#[test]
fn takes_the_status_header() {
    let (head, body) =
        parse(b"Status: 404 Not Found\r\nContent-Type: text/html\r\n\r\nFile not found.");
    assert_eq!(head.status, StatusCode::NOT_FOUND);
    assert!(!head.headers.contains_key("status"));
    assert_eq!(head.headers["content-type"], "text/html");
    assert_eq!(body, "File not found.");
}

#[test]
fn location_without_status_means_302_and_default_is_200() {
    let (head, _) = parse(b"Location: /next\r\n\r\n");
    assert_eq!(head.status, StatusCode::FOUND);
    let (head, _) = parse(b"Content-Type: text/plain\r\n\r\n");
    assert_eq!(head.status, StatusCode::OK);
    let (head, _) = parse(b"Status: 301\r\nLocation: /x\r\n\r\n");
    assert_eq!(head.status, StatusCode::MOVED_PERMANENTLY);
}

#[test]
fn drops_x_accel_and_hop_by_hop_but_keeps_every_set_cookie() {
    let block = b"X-Accel-Redirect: /secret\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\
Transfer-Encoding: chunked\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n";
    let (head, _) = parse(block);
    let names: Vec<&str> = head.headers.keys().map(|n| n.as_str()).collect();
    assert_eq!(names, ["set-cookie"]);
    let cookies: Vec<_> = head.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(head.accel_redirect.as_deref(), Some("/secret"), "kept aside for the worker");
}

#[test]
fn accepts_bare_newlines_and_split_chunks() {
    let mut buf = HeadBuffer::default();
    assert!(buf.push(b"Status: 201 Created\nX-A: 1\n").expect("partial").is_none());
    let (head, body) = buf.push(b"\nbody").expect("valid").expect("complete");
    assert_eq!(head.status, StatusCode::CREATED);
    assert_eq!(head.headers["x-a"], "1");
    assert_eq!(body, "body");
}

#[test]
fn rejects_bad_status_lines() {
    for block in [
        &b"Status: abc\r\n\r\n"[..],
        b"Status: 99\r\n\r\n",
        b"Status: 101\r\n\r\n",
        b"Status:\r\n\r\n",
    ] {
        assert!(HeadBuffer::default().push(block).is_err(), "{}", String::from_utf8_lossy(block));
    }
}

#[test]
fn caps_the_header_block() {
    let mut buf = HeadBuffer::default();
    let line = format!("X-Pad: {}\r\n", "a".repeat(1000));
    let mut result = Ok(None);
    for _ in 0..70 {
        result = buf.push(line.as_bytes());
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(result, Err(CgiError::TooLarge)));
}

#[test]
fn rejects_garbage() {
    assert!(HeadBuffer::default().push(b"no colon here\r\n\r\n").is_err());
}

#[test]
fn finds_the_blank_line_across_one_byte_chunks() {
    let block = b"Status: 204\r\nX-B: 2\r\n\r\nrest";
    let mut buf = HeadBuffer::default();
    let mut done = None;
    for b in block.chunks(1) {
        if let Some(found) = buf.push(b).expect("valid") {
            done = Some(found);
            break;
        }
    }
    let (head, body) = done.expect("complete");
    assert_eq!((head.status, body), (StatusCode::NO_CONTENT, Bytes::new()));
}

#[test]
fn accepts_an_empty_header_block() {
    let (head, body) = parse(b"\r\nbody");
    assert_eq!((head.status, body), (StatusCode::OK, Bytes::from_static(b"body")));
}

#[test]
fn x_accel_redirect_takes_raw_utf8() {
    let (head, _) = parse("X-Accel-Redirect: /files/résumé 2024.pdf\r\n\r\n".as_bytes());
    assert_eq!(head.accel_redirect.as_deref(), Some("/files/résumé 2024.pdf"));
    assert!(HeadBuffer::default().push(b"X-Accel-Redirect: /caf\xe9\r\n\r\n").is_err());
}

#[test]
fn content_length_must_be_one_number() {
    let (head, _) = parse(b"Content-Length: 10\r\nContent-Length: 10\r\n\r\n");
    assert_eq!(head.headers.get_all("content-length").iter().count(), 1);
    for block in [
        &b"Content-Length: abc\r\n\r\n"[..],
        b"Content-Length: -1\r\n\r\n",
        b"Content-Length: +5\r\n\r\n",
        b"Content-Length: 1 2\r\n\r\n",
        b"Content-Length: 10, 10\r\n\r\n",
        b"Content-Length: 99999999999999999999999\r\n\r\n",
        b"Content-Length: 10\r\nContent-Length: 11\r\n\r\n",
        b"Content-Length:\r\n\r\n",
    ] {
        assert!(HeadBuffer::default().push(block).is_err(), "{}", String::from_utf8_lossy(block));
    }
}
