//! A blocking raw-socket Kafka client for the tests where the bytes are the point:
//! requests are built with kafka-protocol's messages and written length-prefixed.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{ProduceRequest, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::Compression;
use sluice_testkit::{RecordBatchBuilder, TestRecord};

/// How long a raw read waits for a frame (or for the close) before giving up.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response frame this client accepts.
const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// What one read of a response frame found.
#[derive(Debug)]
pub enum ReadOutcome {
    /// A whole frame (without its length prefix).
    Frame(Bytes),
    /// The broker closed the connection (EOF or reset) before a whole frame arrived.
    Closed,
    /// Nothing arrived within [`READ_TIMEOUT`].
    TimedOut,
}

/// One TCP connection to the broker.
pub struct RawConnection {
    /// The socket, with read and write timeouts set.
    stream: TcpStream,
}

impl RawConnection {
    /// Connects to `address` (`host:port`).
    pub fn connect(address: &str) -> Self {
        let stream = TcpStream::connect(address).expect("connect to broker");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("set read timeout");
        stream
            .set_write_timeout(Some(READ_TIMEOUT))
            .expect("set write timeout");
        stream.set_nodelay(true).expect("set nodelay");
        RawConnection { stream }
    }

    /// Writes raw bytes (no framing). A write error (the broker already closed) is returned.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Writes `payload` with its i32 length prefix.
    pub fn send_frame(&mut self, payload: &[u8]) -> std::io::Result<()> {
        let length = i32::try_from(payload.len()).expect("frame fits in i32");
        let mut frame = Vec::with_capacity(4 + payload.len());
        frame.extend_from_slice(&length.to_be_bytes());
        frame.extend_from_slice(payload);
        self.send_bytes(&frame)
    }

    /// Encodes and sends a request; panics if the write fails.
    pub fn send_request<R: Request>(&mut self, version: i16, correlation_id: i32, request: &R) {
        let payload = encode_request(R::KEY, version, correlation_id, request, version);
        self.send_frame(&payload).expect("write request");
    }

    /// Reads one response frame.
    pub fn read_frame(&mut self) -> ReadOutcome {
        let mut length = [0u8; 4];
        match read_exact_or_close(&mut self.stream, &mut length) {
            Ok(true) => {}
            Ok(false) => return ReadOutcome::Closed,
            Err(kind) if is_timeout(kind) => return ReadOutcome::TimedOut,
            Err(_) => return ReadOutcome::Closed,
        }
        let length = i32::from_be_bytes(length);
        let length = usize::try_from(length).expect("non-negative response length");
        assert!(
            length <= RESPONSE_BYTES_MAX,
            "response frame of {length} bytes"
        );
        let mut body = vec![0u8; length];
        match read_exact_or_close(&mut self.stream, &mut body) {
            Ok(true) => ReadOutcome::Frame(Bytes::from(body)),
            Ok(false) => ReadOutcome::Closed,
            Err(kind) if is_timeout(kind) => ReadOutcome::TimedOut,
            Err(_) => ReadOutcome::Closed,
        }
    }

    /// Reads one frame and panics unless it is one.
    pub fn expect_frame(&mut self) -> Bytes {
        match self.read_frame() {
            ReadOutcome::Frame(frame) => frame,
            other => panic!("expected a response frame, got {other:?}"),
        }
    }

    /// Asserts that the broker closes the connection without sending a frame.
    pub fn expect_closed(&mut self) {
        match self.read_frame() {
            ReadOutcome::Closed => {}
            other => panic!("expected the broker to close the connection, got {other:?}"),
        }
    }

    /// Sends one Produce v9 (acks=all) of `records` to partition 0 of `topic`
    /// and returns that partition's answer.
    pub fn produce(&mut self, topic: &str, records: Bytes) -> PartitionProduceResponse {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records))])]);
        let response = self.request(9, 7, &request);
        assert_eq!(response.responses.len(), 1, "one topic in the response");
        let partitions = &response.responses[0].partition_responses;
        assert_eq!(partitions.len(), 1, "one partition in the response");
        partitions[0].clone()
    }

    /// Sends a request and decodes its response, checking the correlation id.
    pub fn request<R: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
        request: &R,
    ) -> R::Response {
        self.send_request(version, correlation_id, request);
        let frame = self.expect_frame();
        decode_response::<R>(frame, version, correlation_id)
    }
}

fn is_timeout(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// `Ok(false)` on EOF before the buffer is full; `Err(kind)` on other errors.
fn read_exact_or_close(stream: &mut TcpStream, buffer: &mut [u8]) -> Result<bool, ErrorKind> {
    let mut filled = 0;
    while filled < buffer.len() {
        match stream.read(&mut buffer[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error.kind()),
        }
    }
    Ok(true)
}

/// Header (for `api_key`/`api_version`) followed by `body` encoded at `body_version`.
/// The two versions differ only when a test sends a version the codec cannot encode.
pub fn encode_request<B: Encodable + HeaderVersion>(
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    body: &B,
    body_version: i16,
) -> BytesMut {
    let mut buffer = encode_header(
        api_key,
        api_version,
        correlation_id,
        B::header_version(body_version),
    );
    body.encode(&mut buffer, body_version)
        .expect("encode request body");
    buffer
}

/// A request header alone, encoded at `header_version`.
pub fn encode_header(
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    header_version: i16,
) -> BytesMut {
    let header = RequestHeader::default()
        .with_request_api_key(api_key)
        .with_request_api_version(api_version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("sluice-e2e")));
    let mut buffer = BytesMut::new();
    header
        .encode(&mut buffer, header_version)
        .expect("encode request header");
    buffer
}

/// Decodes a response frame for request type `R` at `version`, checking the correlation id.
pub fn decode_response<R: Request>(frame: Bytes, version: i16, correlation_id: i32) -> R::Response {
    let mut buffer = frame;
    let header = ResponseHeader::decode(&mut buffer, R::Response::header_version(version))
        .expect("decode response header");
    assert_eq!(
        header.correlation_id, correlation_id,
        "response correlation id"
    );
    R::Response::decode(&mut buffer, version).expect("decode response body")
}

/// One RecordBatch v2 holding `values` (keyless) at offsets 0.., not idempotent.
pub fn record_batch(values: &[&str], compression: Compression) -> Bytes {
    let records: Vec<(Option<&str>, &str)> = values.iter().map(|value| (None, *value)).collect();
    let offsets: Vec<i64> = (0..values.len() as i64).collect();
    record_batch_at(&records, &offsets, compression).freeze()
}

/// One RecordBatch v2 of `(key, value)` records at `offsets` (relative to the
/// first), not idempotent, stamped now; mutable, for tests that damage it.
pub fn record_batch_at(
    records: &[(Option<&str>, &str)],
    offsets: &[i64],
    compression: Compression,
) -> BytesMut {
    let records = records
        .iter()
        .zip(offsets)
        .map(|((key, value), offset)| TestRecord::text(*key, Some(value)).offset_delta(*offset));
    RecordBatchBuilder::new()
        .compression(compression)
        .records(records)
        .build()
}
