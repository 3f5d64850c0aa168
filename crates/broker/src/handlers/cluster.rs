//! DescribeCluster (key 60).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, RequestHeader,
};

use super::{str_bytes, AUTHORIZED_OPERATIONS_OMITTED, CLUSTER_OPERATIONS_ALL};
use crate::metadata_view::MetadataView;

/// Endpoint type "brokers" (KIP-919); "controllers" is not served here.
const ENDPOINT_TYPE_BROKERS: i8 = 1;
const UNSUPPORTED_ENDPOINT_TYPE: i16 = 119;

pub async fn describe(
    metadata: &MetadataView,
    _header: &RequestHeader,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let image = metadata.image();
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&image.cluster_id))
        .with_controller_id(BrokerId(metadata.controller_id()))
        .with_endpoint_type(ENDPOINT_TYPE_BROKERS)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS_ALL
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        });
    if request.endpoint_type != ENDPOINT_TYPE_BROKERS {
        response.error_code = UNSUPPORTED_ENDPOINT_TYPE;
        response.error_message = Some(str_bytes("Only the brokers endpoint type is supported"));
        return response;
    }
    response.brokers = image
        .brokers
        .values()
        .filter(|b| !b.fenced || request.include_fenced_brokers)
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.node_id))
                .with_host(str_bytes(&b.host))
                .with_port(b.port as i32)
                .with_rack(b.rack.as_deref().map(str_bytes))
                .with_is_fenced(b.fenced)
        })
        .collect();
    response
}
