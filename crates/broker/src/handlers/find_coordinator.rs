//! FindCoordinator (key 10): a group key maps to the leader of its
//! `__consumer_offsets` partition, a transactional id to the leader of its
//! `__transaction_state` partition; the internal topic is created on first
//! use (`coordinator_topics`).

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::str_bytes;
use crate::controller::Controller;
use crate::coordinator_topics::{self, coordinator_broker};
use crate::error_codes;
use crate::group::{GroupCoordinator, OFFSETS_TOPIC};
use crate::txn::{TransactionCoordinator, TRANSACTION_STATE_TOPIC};

/// Key type 0: a consumer group.
const KEY_TYPE_GROUP: i8 = 0;
/// Key type 1: a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;

pub async fn handle(
    controller: &Controller,
    groups: &GroupCoordinator,
    txns: &TransactionCoordinator,
    header: &RequestHeader,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let version = header.request_api_version;
    let keys: Vec<StrBytes> = if version >= 4 {
        request.coordinator_keys
    } else {
        vec![request.key]
    };
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in keys {
        coordinators.push(locate(controller, groups, txns, request.key_type, key).await);
    }
    let mut response = FindCoordinatorResponse::default();
    if version >= 4 {
        response.coordinators = coordinators;
        return response;
    }
    let Some(found) = coordinators.pop() else {
        return response;
    };
    response.error_code = found.error_code;
    response.node_id = found.node_id;
    response.host = found.host;
    response.port = found.port;
    if version >= 1 {
        response.error_message = found.error_message;
    }
    response
}

fn failed(key: StrBytes, code: i16, message: &str) -> Coordinator {
    Coordinator::default()
        .with_key(key)
        .with_node_id(BrokerId(-1))
        .with_host(str_bytes(""))
        .with_port(-1)
        .with_error_code(code)
        .with_error_message(Some(str_bytes(message)))
}

async fn locate(
    controller: &Controller,
    groups: &GroupCoordinator,
    txns: &TransactionCoordinator,
    key_type: i8,
    key: StrBytes,
) -> Coordinator {
    let for_group = match key_type {
        KEY_TYPE_GROUP => true,
        KEY_TYPE_TRANSACTION => false,
        _ => {
            let message = format!("Unknown coordinator type: {key_type}");
            return failed(key, error_codes::INVALID_REQUEST, &message);
        }
    };
    if !controller.lease().holds() {
        // This node has not heard from the controller for a session
        // timeout: its image may name a coordinator that was replaced
        // meanwhile (docs/FAULTS.md #4). The client asks another broker.
        let message = "This broker has lost contact with the controller; ask another broker.";
        return failed(key, error_codes::COORDINATOR_NOT_AVAILABLE, message);
    }
    let (created, topic, partition) = if for_group {
        (
            coordinator_topics::ensure_offsets_topic(controller, groups).await,
            OFFSETS_TOPIC,
            groups.partition_for(key.as_str()),
        )
    } else {
        (
            coordinator_topics::ensure_transaction_topic(controller, txns).await,
            TRANSACTION_STATE_TOPIC,
            txns.partition_for(key.as_str()),
        )
    };
    let not_available = "The coordinator is not available.";
    if let Err(message) = created {
        tracing::warn!(%message, topic, "creating the coordinator's internal topic failed");
        return failed(key, error_codes::COORDINATOR_NOT_AVAILABLE, not_available);
    }
    let image = controller.image();
    let Some(broker) = coordinator_broker(&image, topic, partition) else {
        return failed(key, error_codes::COORDINATOR_NOT_AVAILABLE, not_available);
    };
    Coordinator::default()
        .with_key(key)
        .with_node_id(BrokerId(broker.node_id))
        .with_host(str_bytes(&broker.host))
        .with_port(i32::from(broker.port))
        .with_error_code(error_codes::NONE)
}
