//! `broker.rack` reaches the registration: Metadata and DescribeCluster name
//! the rack clients (and the replica placer) see.

mod common;

use common::raw::RawConnection;
use common::start_in_process;
use kafka_protocol::messages::{DescribeClusterRequest, MetadataRequest};

#[test]
fn the_configured_rack_is_in_metadata_and_describe_cluster() {
    let cluster = start_in_process(&[("broker.rack", "rack-1")]);
    let mut connection = RawConnection::connect(cluster.bootstrap());
    let metadata = connection.request(12, 1, &MetadataRequest::default().with_topics(Some(vec![])));
    let racks: Vec<Option<String>> = metadata
        .brokers
        .iter()
        .map(|b| b.rack.as_ref().map(|r| r.to_string()))
        .collect();
    assert_eq!(racks, vec![Some("rack-1".to_string())]);
    let described = connection.request(0, 2, &DescribeClusterRequest::default());
    assert_eq!(
        described.brokers[0].rack.as_ref().map(|r| r.to_string()),
        Some("rack-1".to_string())
    );
}

#[test]
fn without_a_rack_none_is_named() {
    let cluster = start_in_process(&[]);
    let mut connection = RawConnection::connect(cluster.bootstrap());
    let metadata = connection.request(12, 1, &MetadataRequest::default().with_topics(Some(vec![])));
    assert!(metadata.brokers.iter().all(|b| b.rack.is_none()));
}
