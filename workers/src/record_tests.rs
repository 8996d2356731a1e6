use tokio::io::AsyncReadExt;

use super::*;

fn end_request() -> Vec<u8> {
    encode_record(END_REQUEST, &[0; 8])
}

fn good_response() -> Vec<u8> {
    let mut bytes = encode_record(STDOUT, b"Status: 200\r\n\r\nhello");
    bytes.extend(encode_record(STDERR, b"a warning"));
    bytes.extend(encode_record(STDOUT, b""));
    bytes.extend(end_request());
    bytes
}

#[test]
fn accepts_a_good_stream_in_any_split() {
    let bytes = good_response();
    for chunk in [1, 3, 8, 13, bytes.len()] {
        let mut parser = RecordParser::default();
        for piece in bytes.chunks(chunk) {
            assert!(!parser.ended());
            parser.feed(piece).expect("well-formed");
        }
        assert!(parser.ended(), "chunk size {chunk}");
    }
}

#[test]
fn rejects_a_short_end_request() {
    let mut bytes = encode_record(STDOUT, b"x");
    bytes.extend([1, END_REQUEST, 0, 1, 0, 0, 0, 0]);
    let mut parser = RecordParser::default();
    assert_eq!(parser.feed(&bytes), Err(RecordError::EndRequestLength(0)));
}

#[test]
fn rejects_wrong_version_id_type_and_trailing_bytes() {
    let mut version = encode_record(STDOUT, b"x");
    version[0] = 2;
    assert_eq!(RecordParser::default().feed(&version), Err(RecordError::Version(2)));
    let mut id = encode_record(STDOUT, b"x");
    id[3] = 2;
    assert_eq!(RecordParser::default().feed(&id), Err(RecordError::RequestId(2)));
    let kind = encode_record(11, &[0; 8]);
    assert_eq!(RecordParser::default().feed(&kind), Err(RecordError::Type(11)));
    let mut trailing = end_request();
    trailing.push(0);
    assert_eq!(RecordParser::default().feed(&trailing), Err(RecordError::Trailing));
}

#[tokio::test]
async fn guard_passes_a_good_stream_and_flags_the_end() {
    let bytes = good_response();
    let (mut guard, end) = RecordGuard::new(&bytes[..]);
    let mut out = Vec::new();
    guard.read_to_end(&mut out).await.expect("well-formed");
    assert_eq!(out, bytes);
    assert!(end.ended() && end.received());
}

#[tokio::test]
async fn guard_fails_a_truncated_stream() {
    let bytes = encode_record(STDOUT, b"Status: 200\r\n\r\npartial");
    let (mut guard, end) = RecordGuard::new(&bytes[..]);
    let err = guard.read_to_end(&mut Vec::new()).await.expect_err("truncated");
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    assert!(!end.ended() && end.received());
}

#[tokio::test]
async fn a_write_after_the_end_starts_the_next_exchange() {
    use tokio::io::AsyncWriteExt;
    // A keep-alive connection: response 1, then request 2 is written, then response 2.
    let (mut near, mut far) = tokio::io::duplex(4096);
    let (mut guard, progress) = RecordGuard::new(&mut near);
    far.write_all(&good_response()).await.expect("fits");
    let mut first = vec![0; good_response().len()];
    guard.read_exact(&mut first).await.expect("well-formed");
    assert!(progress.ended());
    guard.write_all(b"request 2").await.expect("writable");
    assert!(!progress.received() && !progress.ended(), "a new exchange starts at the write");
    far.write_all(&good_response()).await.expect("fits");
    let mut second = vec![0; good_response().len()];
    guard.read_exact(&mut second).await.expect("the parser started over");
    assert!(progress.ended());
}

#[tokio::test]
async fn bytes_after_the_end_without_a_new_request_are_refused() {
    let mut bytes = good_response();
    bytes.extend(encode_record(STDOUT, b"unasked"));
    let (mut guard, _progress) = RecordGuard::new(&bytes[..]);
    let err = guard.read_to_end(&mut Vec::new()).await.expect_err("trailing");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}

#[tokio::test]
async fn guard_hides_malformed_bytes_from_the_reader() {
    let bytes = [1, END_REQUEST, 0, 1, 0, 0, 0, 0];
    let (mut guard, _end) = RecordGuard::new(&bytes[..]);
    let mut out = Vec::new();
    let err = guard.read_to_end(&mut out).await.expect_err("malformed");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(out.is_empty());
}
