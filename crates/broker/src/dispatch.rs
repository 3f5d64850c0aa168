//! Request dispatch: header checks, version gate, decode, route to the handler
//! of each API family, encode the response.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::error_codes;
use crate::handlers;
use crate::handlers::api_versions::{advertised, api_version_list};
use crate::handlers::produce::ProduceOutcome;
use crate::state::BrokerState;

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

/// Produce versions below this close the connection (message format < v2).
const PRODUCE_VERSION_MIN_ACCEPTED: i16 = 3;

/// Handles one frame.
/// `client_host` is the peer address as Kafka shows it (DescribeGroups).
pub async fn handle(state: &BrokerState, frame: Bytes, client_host: &str) -> Outcome {
    // The frame layer guarantees at least 8 bytes.
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let key = match gate(api_key, api_version, correlation_id) {
        Ok(key) => key,
        Err(outcome) => return outcome,
    };

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

    // ApiVersions always answers with response header v0 (no tagged
    // fields), whatever the request version.
    let response_header_version = if key == ApiKey::ApiVersions {
        0
    } else {
        key.response_header_version(api_version)
    };
    let response = match route(state, &header, client_host, request).await {
        Routed::Response(response) => response,
        Routed::Produce(outcome) => {
            return produce_outcome(
                outcome,
                correlation_id,
                response_header_version,
                api_version,
            )
        }
        Routed::Fetch(answer) => {
            return respond_fetch(correlation_id, response_header_version, api_version, answer)
        }
        Routed::Unknown => return Outcome::Close("API not routed"),
    };
    respond(
        correlation_id,
        response_header_version,
        api_version,
        response,
    )
}

/// The checks before decoding: an advertised key and version (an
/// ApiVersions request newer than ours gets a v0 answer, KIP-511), and no
/// Produce below v3.
fn gate(api_key: i16, api_version: i16, correlation_id: i32) -> Result<ApiKey, Outcome> {
    let Some((key, min, max)) = advertised(api_key) else {
        tracing::debug!(api_key, api_version, "unsupported API key");
        return Err(Outcome::Close("unsupported API key"));
    };
    if key == ApiKey::ApiVersions && api_version > max {
        // KIP-511: answer with a v0 body so the client can downgrade; keep the
        // connection open.
        let body = ApiVersionsResponse::default()
            .with_error_code(error_codes::UNSUPPORTED_VERSION)
            .with_api_keys(api_version_list());
        return Err(encode(
            correlation_id,
            0,
            0,
            &ResponseKind::ApiVersions(body),
        ));
    }
    if api_version < min || api_version > max {
        return Err(Outcome::Close("unsupported API version"));
    }
    if key == ApiKey::Produce && api_version < PRODUCE_VERSION_MIN_ACCEPTED {
        return Err(Outcome::Close(
            "Produce v0-v2 (message format < 2) is not supported",
        ));
    }
    Ok(key)
}

/// What a handler produced.
enum Routed {
    Response(ResponseKind),
    /// A Fetch response, some records of which are still in the files.
    Fetch(handlers::fetch::FetchAnswer),
    /// Produce answers now, later (acks=all), never (acks=0) or closes.
    Produce(ProduceOutcome),
    /// No handler for this API.
    Unknown,
}

fn produce_outcome(
    outcome: ProduceOutcome,
    correlation_id: i32,
    header_version: i16,
    api_version: i16,
) -> Outcome {
    match outcome {
        ProduceOutcome::Respond(response) => respond(
            correlation_id,
            header_version,
            api_version,
            ResponseKind::Produce(response),
        ),
        ProduceOutcome::Wait(wait) => Outcome::Deferred(Box::pin(async move {
            let response = ResponseKind::Produce(wait.await);
            encode(correlation_id, header_version, api_version, &response)
        })),
        ProduceOutcome::NoResponse => Outcome::NoResponse,
        ProduceOutcome::Close => Outcome::Close("acks=0 produce failed"),
    }
}

/// KIP-951 leader hints on a Produce answer, now or when it is ready.
fn with_produce_hints(
    outcome: ProduceOutcome,
    version: i16,
    quorum: std::sync::Arc<sluice_meta::MetadataQuorum>,
) -> ProduceOutcome {
    match outcome {
        ProduceOutcome::Respond(mut response) => {
            handlers::leader_hints::add_to_produce(&mut response, version, &quorum.image());
            ProduceOutcome::Respond(response)
        }
        ProduceOutcome::Wait(wait) => ProduceOutcome::Wait(Box::pin(async move {
            let mut response = wait.await;
            handlers::leader_hints::add_to_produce(&mut response, version, &quorum.image());
            response
        })),
        other => other,
    }
}

/// Encodes a response.
fn respond(
    correlation_id: i32,
    header_version: i16,
    api_version: i16,
    response: ResponseKind,
) -> Outcome {
    match response {
        ResponseKind::Fetch(response) => respond_fetch(
            correlation_id,
            header_version,
            api_version,
            handlers::fetch::FetchAnswer {
                response,
                files: Vec::new(),
            },
        ),
        response => encode(correlation_id, header_version, api_version, &response),
    }
}

/// A Fetch response's records go out without being copied into the frame
/// (`net::fetch_frame`): from the log's buffers, or from the segment files.
fn respond_fetch(
    correlation_id: i32,
    header_version: i16,
    api_version: i16,
    answer: handlers::fetch::FetchAnswer,
) -> Outcome {
    match crate::net::fetch_frame::encode(
        correlation_id,
        header_version,
        api_version,
        answer.response,
        answer.files,
    ) {
        Ok(chunks) => Outcome::RespondChunks(chunks),
        Err(body) => encode(
            correlation_id,
            header_version,
            api_version,
            &ResponseKind::Fetch(body),
        ),
    }
}

/// Hands a decoded request to its API family.
async fn route(
    state: &BrokerState,
    header: &RequestHeader,
    client_host: &str,
    request: RequestKind,
) -> Routed {
    let request = match route_data(state, header, request).await {
        Ok(routed) => return routed,
        Err(request) => request,
    };
    let request = match route_admin(state, header, request).await {
        Ok(response) => return Routed::Response(response),
        Err(request) => request,
    };
    let request = match route_groups(state, header, client_host, request).await {
        Ok(response) => return Routed::Response(response),
        Err(request) => request,
    };
    match route_transactions(state, header, request).await {
        Ok(response) => Routed::Response(response),
        Err(_) => Routed::Unknown,
    }
}

/// The data path: Produce, Fetch, offsets and leader epochs of partitions.
async fn route_data(
    state: &BrokerState,
    header: &RequestHeader,
    request: RequestKind,
) -> Result<Routed, RequestKind> {
    let response = match request {
        RequestKind::Produce(r) => {
            let outcome = handlers::produce::handle(&state.replicas, &state.txns, header, r).await;
            return Ok(Routed::Produce(with_produce_hints(
                outcome,
                header.request_api_version,
                state.metadata.quorum().clone(),
            )));
        }
        RequestKind::Fetch(r) => {
            let mut answer =
                handlers::fetch::handle(&state.metadata, &state.replicas, header, r).await;
            let image = state.metadata.image();
            handlers::leader_hints::add_to_fetch(
                &mut answer.response,
                header.request_api_version,
                &image,
            );
            return Ok(Routed::Fetch(answer));
        }
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(
            handlers::list_offsets::handle(&state.replicas, header, r).await,
        ),
        RequestKind::OffsetForLeaderEpoch(r) => ResponseKind::OffsetForLeaderEpoch(
            handlers::leader_epoch::handle(&state.replicas, header, r).await,
        ),
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(
            handlers::delete_records::handle(&state.replicas, header, r).await,
        ),
        other => return Err(other),
    };
    Ok(Routed::Response(response))
}

/// Cluster metadata, topics, configs, producer ids.
async fn route_admin(
    state: &BrokerState,
    header: &RequestHeader,
    request: RequestKind,
) -> Result<ResponseKind, RequestKind> {
    use handlers::admin;
    Ok(match request {
        RequestKind::ApiVersions(_) => {
            ResponseKind::ApiVersions(handlers::api_versions::handle(header.request_api_version))
        }
        RequestKind::Metadata(r) => ResponseKind::Metadata(
            handlers::metadata::handle(
                &state.metadata,
                &state.controller,
                handlers::metadata::Coordinators {
                    groups: &state.groups,
                    txns: &state.txns,
                },
                header,
                r,
            )
            .await,
        ),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(
            handlers::topics::create(&state.metadata, &state.controller, header, r).await,
        ),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(
            handlers::topics::delete(&state.metadata, &state.controller, header, r).await,
        ),
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(
            handlers::configs::describe(&state.metadata, header, r).await,
        ),
        RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(
            handlers::cluster::describe(&state.metadata, header, r).await,
        ),
        RequestKind::DescribeQuorum(r) => ResponseKind::DescribeQuorum(
            handlers::quorum::describe(&state.controller, header, r).await,
        ),
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(
            admin::alter_configs(&state.metadata, &state.controller, header, r).await,
        ),
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            admin::incremental_alter_configs(&state.metadata, &state.controller, header, r).await,
        ),
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(
            admin::create_partitions(&state.controller, header, r).await,
        ),
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(admin::elect_leaders(&state.controller, header, r).await)
        }
        RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(
            handlers::producer_ids::init_producer_id(&state.producer_ids, &state.txns, header, r)
                .await,
        ),
        other => return Err(other),
    })
}

/// Consumer groups and their committed offsets.
async fn route_groups(
    state: &BrokerState,
    header: &RequestHeader,
    client_host: &str,
    request: RequestKind,
) -> Result<ResponseKind, RequestKind> {
    use handlers::{groups, offsets};
    Ok(match request {
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(
            handlers::find_coordinator::handle(
                &state.controller,
                &state.groups,
                &state.txns,
                header,
                r,
            )
            .await,
        ),
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(groups::join(&state.groups, header, client_host, r).await)
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(groups::sync(&state.groups, header, r).await)
        }
        RequestKind::Heartbeat(r) => {
            ResponseKind::Heartbeat(groups::heartbeat(&state.groups, header, r).await)
        }
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(groups::leave(&state.groups, header, r).await)
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(groups::list(&state.groups, header, r).await)
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(groups::describe(&state.groups, header, r).await)
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(groups::delete(&state.groups, header, r).await)
        }
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(
            offsets::commit(&state.metadata, &state.groups, header, r).await,
        ),
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(offsets::fetch(&state.groups, &state.txns, header, r).await)
        }
        RequestKind::OffsetDelete(r) => ResponseKind::OffsetDelete(
            offsets::delete(&state.metadata, &state.groups, header, r).await,
        ),
        other => return Err(other),
    })
}

/// Transactions and their administration.
async fn route_transactions(
    state: &BrokerState,
    header: &RequestHeader,
    request: RequestKind,
) -> Result<ResponseKind, RequestKind> {
    use handlers::{transactions, transactions_admin as admin};
    Ok(match request {
        RequestKind::AddPartitionsToTxn(r) => ResponseKind::AddPartitionsToTxn(
            transactions::add_partitions(&state.metadata, &state.txns, header, r).await,
        ),
        RequestKind::AddOffsetsToTxn(r) => ResponseKind::AddOffsetsToTxn(
            transactions::add_offsets(&state.controller, &state.groups, &state.txns, header, r)
                .await,
        ),
        RequestKind::EndTxn(r) => {
            ResponseKind::EndTxn(transactions::end_txn(&state.txns, header, r).await)
        }
        RequestKind::WriteTxnMarkers(r) => ResponseKind::WriteTxnMarkers(
            handlers::txn_markers::handle(&state.replicas, &state.txns, header, r).await,
        ),
        RequestKind::TxnOffsetCommit(r) => ResponseKind::TxnOffsetCommit(
            transactions::txn_offset_commit(&state.metadata, &state.groups, &state.txns, header, r)
                .await,
        ),
        RequestKind::DescribeProducers(r) => ResponseKind::DescribeProducers(
            admin::describe_producers(&state.replicas, header, r).await,
        ),
        RequestKind::DescribeTransactions(r) => ResponseKind::DescribeTransactions(
            admin::describe_transactions(&state.txns, header, r).await,
        ),
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(admin::list_transactions(&state.txns, header, r).await)
        }
        other => return Err(other),
    })
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
