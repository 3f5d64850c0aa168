#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::*;

/// One ApiVersions v0 round trip with `address`: the broker's error code.
fn api_versions(address: &str) -> i16 {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut payload = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(18)
        .with_request_api_version(0)
        .with_correlation_id(5)
        .with_client_id(Some(StrBytes::from_static_str("testkit")))
        .encode(&mut payload, 1)
        .unwrap();
    ApiVersionsRequest::default()
        .encode(&mut payload, 0)
        .unwrap();
    let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    stream.write_all(&frame).unwrap();
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(length) as usize];
    stream.read_exact(&mut body).unwrap();
    let mut body = Bytes::from(body);
    let correlation_id = body.get_i32();
    assert_eq!(correlation_id, 5);
    ApiVersionsResponse::decode(&mut body, 0)
        .unwrap()
        .error_code
}

fn cluster_id(node: &TestNode) -> String {
    let text = std::fs::read_to_string(node.data_dir().join("meta.properties")).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("cluster.id="))
        .unwrap()
        .to_string()
}

#[test]
fn one_node_serves_restarts_on_its_data_dir_and_stops() {
    let mut cluster = TestCluster::start(1, &[("num.partitions", "2")]).unwrap();
    assert_eq!(cluster.nodes().len(), 1);
    assert_eq!(cluster.controller_quorum_voters(), "");
    let node = cluster.node(1);
    assert_eq!(node.node_id(), 1);
    assert_eq!(cluster.bootstrap(), node.address());
    assert_eq!(api_versions(cluster.bootstrap()), 0);
    let data_dir = node.data_dir().to_path_buf();
    let before = cluster_id(node);

    cluster.restart_node(1).unwrap();
    let node = cluster.node(1);
    assert!(node.is_running());
    assert_eq!(node.data_dir(), data_dir, "the same data directory");
    assert_eq!(cluster_id(node), before, "the same cluster");
    assert_eq!(api_versions(cluster.bootstrap()), 0);

    cluster.stop_node(1).unwrap();
    assert!(!cluster.node(1).is_running());
    assert!(data_dir.join(".clean-shutdown").exists(), "stopped cleanly");
    cluster.shutdown().unwrap();
    assert!(
        !data_dir.exists(),
        "the temporary data directory is removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_starts_and_drops_inside_a_test_runtime() {
    let cluster = TestCluster::start(1, &[]).unwrap();
    let address = cluster.bootstrap().to_string();
    let code = tokio::task::spawn_blocking(move || api_versions(&address))
        .await
        .unwrap();
    assert_eq!(code, 0);
    drop(cluster);
}

#[test]
fn several_nodes_get_ids_and_voters_and_form_one_cluster() {
    let configs = node_configs(&[ProcessRoles::Combined; 3], false, &[]).unwrap();
    let ids: Vec<i32> = configs.iter().map(|(config, _)| config.node_id).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    let voters = &configs[0].0.controller_voters;
    assert_eq!(voters.len(), 3);
    for (config, _) in &configs {
        assert_eq!(
            &config.controller_voters, voters,
            "every node knows every voter"
        );
        let own = &voters[(config.node_id - 1) as usize];
        assert_eq!(config.settings.get(CONTROLLER_LISTEN_SETTING), Some(&own.1));
    }
    assert!(format_voters(voters).starts_with("1@127.0.0.1:"));
    let roles = [
        ProcessRoles::Controller,
        ProcessRoles::Combined,
        ProcessRoles::Broker,
    ];
    let configs = node_configs(&roles, false, &[]).unwrap();
    let voter_ids: Vec<i32> = configs[2]
        .0
        .controller_voters
        .iter()
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(
        voter_ids,
        vec![1, 2],
        "the nodes with the controller role vote"
    );
    let written: Vec<&str> = configs
        .iter()
        .map(|(config, _)| config.settings["process.roles"].as_str())
        .collect();
    assert_eq!(written, vec!["controller", "broker,controller", "broker"]);
    assert_eq!(configs[2].0.settings.get(CONTROLLER_LISTEN_SETTING), None);

    let cluster = TestCluster::start(3, &[]).expect("a three-voter cluster starts");
    for node in cluster.nodes() {
        assert_eq!(api_versions(&node.address()), 0);
    }
    let ids: Vec<String> = cluster.nodes().iter().map(cluster_id).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one cluster id: {ids:?}"
    );
    cluster.shutdown().unwrap();
}

#[test]
fn unknown_node_ids_are_errors() {
    let mut cluster = TestCluster::start(1, &[]).unwrap();
    for node_id in [0, 2, -1] {
        assert!(matches!(
            cluster.restart_node(node_id),
            Err(ClusterError::NoSuchNode(id)) if id == node_id
        ));
    }
}
