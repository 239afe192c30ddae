//! Hostile and broken bytes on a raw socket: each such connection is answered
//! with an error or closed, and the broker goes on serving other clients.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Instant;

use common::{Broker, TIMEOUT};

/// API key 18, ApiVersions.
const API_VERSIONS: i16 = 18;

fn connect(broker: &Broker) -> TcpStream {
    let stream = TcpStream::connect(broker.addr()).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    stream.set_write_timeout(Some(TIMEOUT)).expect("write timeout");
    stream
}

/// A request frame: size, then header v1 (api key, version, correlation id,
/// client id), then `body`.
fn frame(api_key: i16, api_version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let client_id = b"bad-input-test";
    let mut payload = Vec::new();
    payload.extend_from_slice(&api_key.to_be_bytes());
    payload.extend_from_slice(&api_version.to_be_bytes());
    payload.extend_from_slice(&correlation_id.to_be_bytes());
    payload.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    payload.extend_from_slice(client_id);
    payload.extend_from_slice(body);
    let mut framed = (payload.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&payload);
    framed
}

/// Reads one response frame; None if the broker closed the connection first.
fn read_response(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut size = [0_u8; 4];
    match stream.read_exact(&mut size) {
        Ok(()) => {}
        Err(error) if matches!(error.kind(), ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset) => return None,
        Err(error) => panic!("no answer and no close within {TIMEOUT:?}: {error}"),
    }
    let size = i32::from_be_bytes(size);
    assert!((4..=1 << 20).contains(&size), "implausible response size {size}");
    let mut response = vec![0_u8; size as usize];
    stream.read_exact(&mut response).expect("the rest of the response");
    Some(response)
}

/// Waits until the broker either sends something (an error response) or
/// closes the connection; fails if it does neither in time.
fn expect_error_or_close(stream: &mut TcpStream) {
    let mut buffer = [0_u8; 4096];
    match stream.read(&mut buffer) {
        Ok(_) => {}
        Err(error) if error.kind() == ErrorKind::ConnectionReset => {}
        Err(error) => panic!("the connection was neither answered nor closed within {TIMEOUT:?}: {error}"),
    }
}

/// ApiVersions v0 on a fresh connection succeeds: the broker still serves.
fn assert_still_serving(broker: &Broker) {
    let mut stream = connect(broker);
    stream
        .write_all(&frame(API_VERSIONS, 0, 7, &[]))
        .expect("send ApiVersions");
    let response = read_response(&mut stream).expect("an ApiVersions response");
    assert_eq!(
        i32::from_be_bytes(response[0..4].try_into().expect("4 bytes")),
        7,
        "correlation id"
    );
    assert_eq!(
        i16::from_be_bytes(response[4..6].try_into().expect("2 bytes")),
        0,
        "error code"
    );

    let metadata = broker
        .admin()
        .inner()
        .fetch_metadata(None, TIMEOUT)
        .expect("metadata from a real client");
    assert_eq!(metadata.brokers().len(), 1);
}

#[test]
fn garbage_bytes_close_the_connection() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    expect_error_or_close(&mut stream);
    assert_still_serving(&broker);
}

#[test]
fn random_bytes_after_a_plausible_size_close_the_connection() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    // A frame of 64 bytes whose header is nonsense (api key -1, and so on).
    let mut bytes = 64_i32.to_be_bytes().to_vec();
    bytes.extend((0..64_u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 | 0x80));
    stream.write_all(&bytes).expect("send");
    expect_error_or_close(&mut stream);
    assert_still_serving(&broker);
}

#[test]
fn a_two_gibibyte_length_prefix_closes_the_connection() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    stream.write_all(&i32::MAX.to_be_bytes()).expect("send size");
    // A broker that tried to allocate or read 2 GiB would hang here.
    let _ = stream.write_all(&[0_u8; 1024]);
    expect_error_or_close(&mut stream);
    assert_still_serving(&broker);
}

#[test]
fn a_negative_length_prefix_closes_the_connection() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    stream.write_all(&(-1_i32).to_be_bytes()).expect("send size");
    expect_error_or_close(&mut stream);
    assert_still_serving(&broker);
}

#[test]
fn a_truncated_frame_is_dropped_when_the_client_goes_away() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    let full = frame(API_VERSIONS, 0, 1, &[]);
    // Claim the whole frame but send half of it, then end the stream.
    stream.write_all(&full[..full.len() / 2]).expect("send half");
    stream.shutdown(Shutdown::Write).expect("half-close");
    expect_error_or_close(&mut stream);
    assert_still_serving(&broker);
}

#[test]
fn a_truncated_request_body_is_an_error_not_a_crash() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    // Metadata v1 (api key 3) whose topics array claims 1000 entries but holds none.
    stream
        .write_all(&frame(3, 1, 9, &1000_i32.to_be_bytes()))
        .expect("send");
    expect_error_or_close(&mut stream);
    assert_still_serving(&broker);
}

#[test]
fn an_unknown_api_key_is_answered_with_an_error_or_closed() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    stream.write_all(&frame(9_999, 0, 42, &[])).expect("send");
    // Kafka closes the connection; an error response must at least be for this request.
    if let Some(response) = read_response(&mut stream) {
        assert_eq!(
            i32::from_be_bytes(response[0..4].try_into().expect("4 bytes")),
            42,
            "correlation id"
        );
    }
    assert_still_serving(&broker);
}

#[test]
fn an_unsupported_api_versions_version_is_answered_in_v0() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    // KIP-511: a too-new ApiVersions is answered in v0 with UNSUPPORTED_VERSION
    // (35) and the supported ranges, so the client can retry with one it knows.
    stream.write_all(&frame(API_VERSIONS, 999, 5, &[])).expect("send");
    let response = read_response(&mut stream).expect("an ApiVersions v0 response");
    assert_eq!(
        i32::from_be_bytes(response[0..4].try_into().expect("4 bytes")),
        5,
        "correlation id"
    );
    assert_eq!(
        i16::from_be_bytes(response[4..6].try_into().expect("2 bytes")),
        35,
        "UNSUPPORTED_VERSION"
    );
    let count = i32::from_be_bytes(response[6..10].try_into().expect("4 bytes"));
    assert!(count > 0, "the supported ranges are listed");
    let ranges = &response[10..];
    let lists_api_versions = ranges
        .chunks_exact(6)
        .take(count as usize)
        .any(|range| i16::from_be_bytes([range[0], range[1]]) == API_VERSIONS);
    assert!(lists_api_versions, "ApiVersions itself is among the ranges");
    assert_still_serving(&broker);
}

#[test]
fn many_bad_connections_in_a_row_leave_the_broker_serving() {
    let broker = Broker::start();
    let deadline = Instant::now() + TIMEOUT * 2;
    for round in 0..20_u8 {
        let mut stream = connect(&broker);
        let bytes: Vec<u8> = match round % 4 {
            0 => b"\x00\x00\x00\x05hello".to_vec(),
            1 => i32::MAX.to_be_bytes().to_vec(),
            2 => frame(9_999, 3, i32::from(round), &[]),
            _ => vec![round; 3],
        };
        stream.write_all(&bytes).expect("send");
        if round % 4 == 3 {
            // Three bytes: not even a length prefix. Leave abruptly.
            drop(stream);
        } else {
            expect_error_or_close(&mut stream);
        }
        assert!(Instant::now() < deadline, "too slow");
    }
    assert_still_serving(&broker);
}
