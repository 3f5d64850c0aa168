//! A follower's connection to its leader's listener: one Kafka request at a
//! time, encoded and decoded by `kafka-protocol`, framed with the 4-byte
//! length prefix, every exchange bounded by a timeout and the response by a
//! size limit. (Kafka's `BlockingSend`; the one client the broker needs, so
//! written here rather than pulled in with a whole client library.)

use std::io;
use std::time::Duration;

use bytes::{Buf as _, BufMut as _, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A length prefix above this is garbage (a fetch response is bounded by
/// `replica.fetch.response.max.bytes`, plus one batch that may exceed it).
const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

pub(crate) struct LeaderClient {
    stream: TcpStream,
    client_id: StrBytes,
    next_correlation_id: i32,
}

impl LeaderClient {
    pub(crate) async fn connect(
        host: &str,
        port: u16,
        client_id: String,
        timeout: Duration,
    ) -> io::Result<LeaderClient> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connecting timed out"))??;
        stream.set_nodelay(true)?;
        Ok(LeaderClient {
            stream,
            client_id: StrBytes::from_string(client_id),
            next_correlation_id: 0,
        })
    }

    /// Sends `request` at `version` and reads its response, within
    /// `timeout`. Any error leaves the connection unusable: drop it.
    pub(crate) async fn send<R: Request>(
        &mut self,
        version: i16,
        request: &R,
        timeout: Duration,
    ) -> io::Result<R::Response> {
        tokio::time::timeout(timeout, self.exchange(version, request))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request timed out"))?
    }

    async fn exchange<R: Request>(&mut self, version: i16, request: &R) -> io::Result<R::Response> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .map_err(|e| invalid(format!("encoding the request header: {e}")))?;
        request
            .encode(&mut body, version)
            .map_err(|e| invalid(format!("encoding the request: {e}")))?;
        let mut frame = BytesMut::with_capacity(4 + body.len());
        frame.put_u32(
            u32::try_from(body.len()).map_err(|_| invalid("request too large".to_string()))?,
        );
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).await?;

        let length = self.stream.read_u32().await? as usize;
        if length > RESPONSE_BYTES_MAX {
            return Err(invalid(format!(
                "response of {length} bytes exceeds the {RESPONSE_BYTES_MAX}-byte bound"
            )));
        }
        let mut response = vec![0u8; length];
        self.stream.read_exact(&mut response).await?;
        let mut response = bytes::Bytes::from(response);
        let response_header =
            ResponseHeader::decode(&mut response, R::Response::header_version(version))
                .map_err(|e| invalid(format!("decoding the response header: {e}")))?;
        if response_header.correlation_id != correlation_id {
            return Err(invalid(format!(
                "response correlation id {} does not match request {correlation_id}",
                response_header.correlation_id
            )));
        }
        let decoded = R::Response::decode(&mut response, version)
            .map_err(|e| invalid(format!("decoding the response: {e}")))?;
        if response.has_remaining() {
            tracing::debug!(
                bytes = response.remaining(),
                "trailing bytes after a response"
            );
        }
        Ok(decoded)
    }
}
