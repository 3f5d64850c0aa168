//! A raw Metadata request, for the fields the `rdkafka` crate does not expose
//! without `unsafe`: the controller id and each partition's leader epoch.
//!
//! Encoding and decoding are the `kafka-protocol` crate's; this module only
//! frames one request at a time on a fresh connection: ApiVersions v0 to
//! pick the Metadata version, then Metadata. Every step has a timeout.

use std::collections::BTreeMap;

use anyhow::{bail, Context as _};
use bytes::{Buf as _, BufMut as _, BytesMut};
use kafka_protocol::messages::{
    describe_quorum_request, metadata_request::MetadataRequestTopic, ApiVersionsRequest,
    DescribeClusterRequest, DescribeClusterResponse, DescribeQuorumRequest, DescribeQuorumResponse,
    MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::client::REQUEST_TIMEOUT;

/// The largest response this client reads; a Metadata response for the
/// CLI's purposes is far smaller, and a bigger length prefix means garbage.
const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// The newest Metadata version this client asks for.
const METADATA_VERSION_MAX: i16 = 12;
/// Version 7 introduced the partition leader epoch; older answers lack it.
const METADATA_VERSION_MIN: i16 = 7;

/// Fetches metadata (one topic, or none with `topic = None`) from the first
/// bootstrap broker that answers.
pub async fn metadata(brokers: &str, topic: Option<&str>) -> anyhow::Result<MetadataResponse> {
    let mut last_error = None;
    for address in brokers.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match tokio::time::timeout(REQUEST_TIMEOUT, metadata_from(address, topic)).await {
            Ok(Ok(response)) => return Ok(response),
            Ok(Err(error)) => last_error = Some(error.context(format!("broker {address}"))),
            Err(_) => last_error = Some(anyhow::anyhow!("broker {address}: timed out")),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no brokers given")))
}

/// DescribeQuorum (v0: every field the CLI shows) of the metadata log's
/// partition, from the first bootstrap broker that answers.
pub async fn describe_quorum(brokers: &str) -> anyhow::Result<DescribeQuorumResponse> {
    let request = DescribeQuorumRequest::default().with_topics(vec![
        describe_quorum_request::TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![describe_quorum_request::PartitionData::default()]),
    ]);
    first_answer(brokers, move |mut stream| {
        let request = request.clone();
        async move { round_trip(&mut stream, 1, 0, &request).await }
    })
    .await
}

/// DescribeCluster v2 with fenced brokers included.
pub async fn describe_cluster(brokers: &str) -> anyhow::Result<DescribeClusterResponse> {
    let request = DescribeClusterRequest::default().with_include_fenced_brokers(true);
    first_answer(brokers, move |mut stream| {
        let request = request.clone();
        async move { round_trip(&mut stream, 1, 2, &request).await }
    })
    .await
}

/// Runs `exchange` on a fresh connection to each bootstrap broker in turn
/// until one answers.
async fn first_answer<T, F, Fut>(brokers: &str, exchange: F) -> anyhow::Result<T>
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut last_error = None;
    for address in brokers.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let attempt = async {
            let stream = TcpStream::connect(address).await.context("connecting")?;
            exchange(stream).await
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, attempt).await {
            Ok(Ok(response)) => return Ok(response),
            Ok(Err(error)) => last_error = Some(error.context(format!("broker {address}"))),
            Err(_) => last_error = Some(anyhow::anyhow!("broker {address}: timed out")),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no brokers given")))
}

/// Each partition's leader epoch, by partition index.
pub async fn leader_epochs(brokers: &str, topic: &str) -> anyhow::Result<BTreeMap<i32, i32>> {
    let response = metadata(brokers, Some(topic)).await?;
    Ok(response
        .topics
        .iter()
        .filter(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.leader_epoch))
        .collect())
}

async fn metadata_from(address: &str, topic: Option<&str>) -> anyhow::Result<MetadataResponse> {
    let mut stream = TcpStream::connect(address).await.context("connecting")?;
    let versions = round_trip(&mut stream, 1, 0, &ApiVersionsRequest::default()).await?;
    if versions.error_code != 0 {
        bail!("ApiVersions failed with error code {}", versions.error_code);
    }
    let Some(range) = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == MetadataRequest::KEY)
    else {
        bail!("the broker does not offer Metadata");
    };
    let version = range.max_version.min(METADATA_VERSION_MAX);
    if version < METADATA_VERSION_MIN || range.min_version > version {
        bail!(
            "the broker offers Metadata v{}-v{}, this client needs v{METADATA_VERSION_MIN}+",
            range.min_version,
            range.max_version
        );
    }
    let request = MetadataRequest::default()
        .with_topics(topic.map(|name| {
            vec![MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))]
        }))
        .with_allow_auto_topic_creation(false);
    round_trip(&mut stream, 2, version, &request).await
}

/// Sends one request and reads its response on `stream` (also used by
/// `group`, which keeps a connection to the group coordinator).
pub(crate) async fn round_trip<R: Request>(
    stream: &mut TcpStream,
    correlation_id: i32,
    version: i16,
    request: &R,
) -> anyhow::Result<R::Response> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("sluice-cli")));
    let mut body = BytesMut::new();
    header.encode(&mut body, R::header_version(version))?;
    request.encode(&mut body, version)?;
    let mut frame = BytesMut::with_capacity(4 + body.len());
    frame.put_u32(u32::try_from(body.len()).context("request too large")?);
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await.context("sending request")?;

    let length = stream.read_u32().await.context("reading response")? as usize;
    if length > RESPONSE_BYTES_MAX {
        bail!("response of {length} bytes exceeds the {RESPONSE_BYTES_MAX}-byte bound");
    }
    let mut response = vec![0u8; length];
    stream
        .read_exact(&mut response)
        .await
        .context("reading response")?;
    let mut response = bytes::Bytes::from(response);
    let response_header =
        ResponseHeader::decode(&mut response, R::Response::header_version(version))?;
    if response_header.correlation_id != correlation_id {
        bail!(
            "response correlation id {} does not match request {correlation_id}",
            response_header.correlation_id
        );
    }
    let decoded = R::Response::decode(&mut response, version)?;
    if response.has_remaining() {
        tracing::debug!(
            bytes = response.remaining(),
            "trailing bytes after response"
        );
    }
    Ok(decoded)
}
