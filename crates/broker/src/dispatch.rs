//! Request dispatch: header checks, version gate, decode, route to the handler
//! of each API family, encode the response.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::error_codes;
use crate::handlers;
use crate::BrokerState;

/// What the connection does after a request.
pub enum Outcome {
    /// Send these bytes (length prefix included).
    Respond(BytesMut),
    /// Send these chunks, in order, as one frame (a Fetch response whose
    /// records are the log's own buffers; see `net::fetch_frame`).
    RespondChunks(crate::net::fetch_frame::Chunks),
    /// acks=0 Produce: no response at all.
    NoResponse,
    /// Close the connection (bad input, unsupported version, acks=0 failure).
    Close(&'static str),
    /// An acks=all produce that has been applied and now waits for
    /// durability: the writer awaits it (in order) while later requests are
    /// handled.
    Deferred(std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send>>),
}

/// Every API key Sluice implements, with the versions advertised.
/// Produce is advertised from v0 as Kafka 4.0 does (KAFKA-18659: librdkafka
/// before 2.11.1 turns compression off otherwise), but v0–v2 close the
/// connection.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 12),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteRecords, 0, 2),
    // Transactions (transaction version 1: no KIP-890 part 2, so EndTxn v5
    // and TxnOffsetCommit v5 stay unadvertised; AddPartitionsToTxn v4+ is
    // the broker-to-broker verification form).
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 4),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
];

/// Produce versions below this close the connection (message format < v2).
const PRODUCE_VERSION_MIN_ACCEPTED: i16 = 3;

fn advertised(api_key: i16) -> Option<(ApiKey, i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .copied()
        .find(|(key, _, _)| *key as i16 == api_key)
}

/// The ApiVersions list.
pub fn api_version_list() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

/// Handles one frame.
/// `client_host` is the peer address as Kafka shows it (DescribeGroups).
pub async fn handle(state: &BrokerState, frame: Bytes, client_host: &str) -> Outcome {
    // The frame layer guarantees at least 8 bytes.
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);

    let Some((key, min, max)) = advertised(api_key) else {
        tracing::debug!(api_key, api_version, "unsupported API key");
        return Outcome::Close("unsupported API key");
    };
    if key == ApiKey::ApiVersions && api_version > max {
        // KIP-511: answer with a v0 body so the client can downgrade; keep the
        // connection open.
        let body = ApiVersionsResponse::default()
            .with_error_code(error_codes::UNSUPPORTED_VERSION)
            .with_api_keys(api_version_list());
        return encode(correlation_id, 0, 0, &ResponseKind::ApiVersions(body));
    }
    if api_version < min || api_version > max {
        return Outcome::Close("unsupported API version");
    }
    if key == ApiKey::Produce && api_version < PRODUCE_VERSION_MIN_ACCEPTED {
        return Outcome::Close("Produce v0-v2 (message format < 2) is not supported");
    }

    let mut buf = frame;
    let header_version = key.request_header_version(api_version);
    let header = match RequestHeader::decode(&mut buf, header_version) {
        Ok(header) => header,
        Err(_) => return Outcome::Close("undecodable request header"),
    };
    let request = match RequestKind::decode(key, &mut buf, api_version) {
        Ok(request) => request,
        Err(error) => {
            tracing::info!(api_key, api_version, %error, "undecodable request");
            return Outcome::Close("undecodable request");
        }
    };
    tracing::trace!(api_key, api_version, correlation_id, "request");

    let response = match request {
        RequestKind::ApiVersions(_) => Some(ResponseKind::ApiVersions(
            handlers::api_versions::handle(api_version),
        )),
        RequestKind::Metadata(r) => Some(ResponseKind::Metadata(
            handlers::metadata::handle(state, &header, r).await,
        )),
        RequestKind::CreateTopics(r) => Some(ResponseKind::CreateTopics(
            handlers::topics::create(state, &header, r).await,
        )),
        RequestKind::DeleteTopics(r) => Some(ResponseKind::DeleteTopics(
            handlers::topics::delete(state, &header, r).await,
        )),
        RequestKind::Produce(r) => match handlers::produce::handle(state, &header, r).await {
            handlers::produce::ProduceOutcome::Respond(response) => {
                Some(ResponseKind::Produce(response))
            }
            handlers::produce::ProduceOutcome::Wait(wait) => {
                let header_version = key.response_header_version(api_version);
                return Outcome::Deferred(Box::pin(async move {
                    let response = ResponseKind::Produce(wait.await);
                    encode(correlation_id, header_version, api_version, &response)
                }));
            }
            handlers::produce::ProduceOutcome::NoResponse => None,
            handlers::produce::ProduceOutcome::Close => {
                return Outcome::Close("acks=0 produce failed")
            }
        },
        RequestKind::Fetch(r) => Some(ResponseKind::Fetch(
            handlers::fetch::handle(state, &header, r).await,
        )),
        RequestKind::ListOffsets(r) => Some(ResponseKind::ListOffsets(
            handlers::list_offsets::handle(state, &header, r).await,
        )),
        RequestKind::OffsetForLeaderEpoch(r) => Some(ResponseKind::OffsetForLeaderEpoch(
            handlers::leader_epoch::handle(state, &header, r).await,
        )),
        RequestKind::DescribeConfigs(r) => Some(ResponseKind::DescribeConfigs(
            handlers::configs::describe(state, &header, r).await,
        )),
        RequestKind::DescribeCluster(r) => Some(ResponseKind::DescribeCluster(
            handlers::cluster::describe(state, &header, r).await,
        )),
        RequestKind::AlterConfigs(r) => Some(ResponseKind::AlterConfigs(
            handlers::admin::alter_configs(state, &header, r).await,
        )),
        RequestKind::IncrementalAlterConfigs(r) => Some(ResponseKind::IncrementalAlterConfigs(
            handlers::admin::incremental_alter_configs(state, &header, r).await,
        )),
        RequestKind::CreatePartitions(r) => Some(ResponseKind::CreatePartitions(
            handlers::admin::create_partitions(state, &header, r).await,
        )),
        RequestKind::InitProducerId(r) => Some(ResponseKind::InitProducerId(
            handlers::producer_ids::init_producer_id(state, &header, r).await,
        )),
        RequestKind::DeleteRecords(r) => Some(ResponseKind::DeleteRecords(
            handlers::delete_records::handle(state, &header, r).await,
        )),
        RequestKind::FindCoordinator(r) => Some(ResponseKind::FindCoordinator(
            handlers::groups::find_coordinator(state, &header, r).await,
        )),
        RequestKind::JoinGroup(r) => Some(ResponseKind::JoinGroup(
            handlers::groups::join(state, &header, client_host, r).await,
        )),
        RequestKind::SyncGroup(r) => Some(ResponseKind::SyncGroup(
            handlers::groups::sync(state, &header, r).await,
        )),
        RequestKind::Heartbeat(r) => Some(ResponseKind::Heartbeat(
            handlers::groups::heartbeat(state, &header, r).await,
        )),
        RequestKind::LeaveGroup(r) => Some(ResponseKind::LeaveGroup(
            handlers::groups::leave(state, &header, r).await,
        )),
        RequestKind::ListGroups(r) => Some(ResponseKind::ListGroups(
            handlers::groups::list(state, &header, r).await,
        )),
        RequestKind::DescribeGroups(r) => Some(ResponseKind::DescribeGroups(
            handlers::groups::describe(state, &header, r).await,
        )),
        RequestKind::DeleteGroups(r) => Some(ResponseKind::DeleteGroups(
            handlers::groups::delete(state, &header, r).await,
        )),
        RequestKind::OffsetCommit(r) => Some(ResponseKind::OffsetCommit(
            handlers::offsets::commit(state, &header, r).await,
        )),
        RequestKind::OffsetFetch(r) => Some(ResponseKind::OffsetFetch(
            handlers::offsets::fetch(state, &header, r).await,
        )),
        RequestKind::OffsetDelete(r) => Some(ResponseKind::OffsetDelete(
            handlers::offsets::delete(state, &header, r).await,
        )),
        RequestKind::AddPartitionsToTxn(r) => Some(ResponseKind::AddPartitionsToTxn(
            handlers::transactions::add_partitions(state, &header, r).await,
        )),
        RequestKind::AddOffsetsToTxn(r) => Some(ResponseKind::AddOffsetsToTxn(
            handlers::transactions::add_offsets(state, &header, r).await,
        )),
        RequestKind::EndTxn(r) => Some(ResponseKind::EndTxn(
            handlers::transactions::end_txn(state, &header, r).await,
        )),
        RequestKind::TxnOffsetCommit(r) => Some(ResponseKind::TxnOffsetCommit(
            handlers::transactions::txn_offset_commit(state, &header, r).await,
        )),
        RequestKind::DescribeProducers(r) => Some(ResponseKind::DescribeProducers(
            handlers::transactions_admin::describe_producers(state, &header, r).await,
        )),
        RequestKind::DescribeTransactions(r) => Some(ResponseKind::DescribeTransactions(
            handlers::transactions_admin::describe_transactions(state, &header, r).await,
        )),
        RequestKind::ListTransactions(r) => Some(ResponseKind::ListTransactions(
            handlers::transactions_admin::list_transactions(state, &header, r).await,
        )),
        _ => return Outcome::Close("API not routed"),
    };
    match response {
        None => Outcome::NoResponse,
        Some(response) => {
            // ApiVersions always answers with response header v0 (no tagged
            // fields), whatever the request version.
            let header_version = if key == ApiKey::ApiVersions {
                0
            } else {
                key.response_header_version(api_version)
            };
            if let ResponseKind::Fetch(body) = response {
                // Records go out without being copied into the frame.
                return match crate::net::fetch_frame::encode(
                    correlation_id,
                    header_version,
                    api_version,
                    body,
                ) {
                    Ok(chunks) => Outcome::RespondChunks(chunks),
                    Err(body) => encode(
                        correlation_id,
                        header_version,
                        api_version,
                        &ResponseKind::Fetch(body),
                    ),
                };
            }
            encode(correlation_id, header_version, api_version, &response)
        }
    }
}

fn encode(correlation_id: i32, header_version: i16, version: i16, body: &ResponseKind) -> Outcome {
    let mut out = BytesMut::with_capacity(256);
    out.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    if header.encode(&mut out, header_version).is_err() {
        return Outcome::Close("response header encode failed");
    }
    if let Err(error) = body.encode(&mut out, version) {
        tracing::error!(%error, version, "response encode failed");
        return Outcome::Close("response encode failed");
    }
    let length = (out.len() - 4) as i32;
    out[0..4].copy_from_slice(&length.to_be_bytes());
    Outcome::Respond(out)
}
