//! Leader routing for the raw-protocol clients: which broker leads each
//! partition (a Metadata request to the bootstrap broker, as every Kafka
//! client starts), and how a client's connections are dealt out so that
//! each connection talks to one leader about the partitions it leads.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, ResponseHeader};
use kafka_protocol::protocol::{Decodable, StrBytes};

/// The Metadata version asked (v9: flexible, topic names).
const METADATA_VERSION: i16 = 9;
/// Largest Metadata response accepted.
const RESPONSE_BYTES_MAX: usize = 16 << 20;
/// How long to wait for every partition to have a leader (a topic just
/// created on a cluster gets its leaders within a metadata round).
const LEADERS_TIMEOUT: Duration = Duration::from_secs(30);
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// One leader and the partitions of the topic it leads (one connection's
/// worth, once dealt out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The leader's advertised address, `host:port`.
    pub broker: String,
    pub partitions: Vec<i32>,
}

/// The leader of each of `partitions` of `topic`, as the bootstrap broker
/// sees it, grouped by leader. Waits (up to 30 s) while a partition has no
/// leader yet.
pub fn leaders(bootstrap: &str, topic: &str, partitions: &[i32]) -> anyhow::Result<Vec<Route>> {
    let deadline = Instant::now() + LEADERS_TIMEOUT;
    loop {
        let response = metadata(bootstrap, topic)?;
        match routes(&response, topic, partitions) {
            Ok(routes) => return Ok(routes),
            Err(error) if Instant::now() >= deadline => {
                return Err(error.context(format!("after {} s", LEADERS_TIMEOUT.as_secs())))
            }
            Err(_) => std::thread::sleep(RETRY_PAUSE),
        }
    }
}

/// Splits each leader's partitions over connections: `connections` in all
/// (at least one per leader, at most one per partition), shared out in
/// proportion to the partitions each leader has; partitions dealt in turn.
pub fn deal(routes: &[Route], connections: usize) -> Vec<Route> {
    let total: usize = routes.iter().map(|r| r.partitions.len()).sum();
    let mut dealt = Vec::new();
    for route in routes {
        let share = (connections * route.partitions.len())
            .div_ceil(total.max(1))
            .clamp(1, route.partitions.len().max(1));
        for index in 0..share {
            dealt.push(Route {
                broker: route.broker.clone(),
                partitions: route
                    .partitions
                    .iter()
                    .copied()
                    .skip(index)
                    .step_by(share)
                    .collect(),
            });
        }
    }
    dealt.retain(|route| !route.partitions.is_empty());
    dealt
}

fn metadata(bootstrap: &str, topic: &str) -> anyhow::Result<MetadataResponse> {
    let mut stream =
        TcpStream::connect(bootstrap).with_context(|| format!("connecting to {bootstrap}"))?;
    stream
        .set_read_timeout(Some(LEADERS_TIMEOUT))
        .context("read timeout")?;
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            kafka_protocol::messages::TopicName(StrBytes::from_string(topic.to_string())),
        ))]))
        .with_allow_auto_topic_creation(false);
    let frame = super::raw::frame(ApiKey::Metadata, METADATA_VERSION, 1, &request)?;
    std::io::Write::write_all(&mut stream, &frame).context("sending a Metadata request")?;
    let mut body = super::raw::read_frame(&mut stream, RESPONSE_BYTES_MAX)?;
    ResponseHeader::decode(
        &mut body,
        ApiKey::Metadata.response_header_version(METADATA_VERSION),
    )
    .context("decoding a response header")?;
    MetadataResponse::decode(&mut body, METADATA_VERSION).context("decoding a Metadata response")
}

/// `partitions` of `topic` grouped by leader, or why not (yet).
fn routes(
    response: &MetadataResponse,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<Vec<Route>> {
    let addresses: BTreeMap<i32, String> = response
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
        .collect();
    let Some(described) = response
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
    else {
        bail!("the broker's metadata has no topic {topic}");
    };
    if described.error_code != 0 {
        bail!(
            "topic {topic}: metadata error code {}",
            described.error_code
        );
    }
    let mut by_leader: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for partition in partitions {
        let Some(found) = described
            .partitions
            .iter()
            .find(|p| p.partition_index == *partition)
        else {
            bail!("topic {topic} has no partition {partition} in the metadata");
        };
        let Some(address) = addresses.get(&found.leader_id.0) else {
            bail!("partition {partition} of {topic} has no leader that is a live broker yet");
        };
        by_leader
            .entry(address.clone())
            .or_default()
            .push(*partition);
    }
    Ok(by_leader
        .into_iter()
        .map(|(broker, partitions)| Route { broker, partitions })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{BrokerId, TopicName};

    fn route(broker: &str, partitions: &[i32]) -> Route {
        Route {
            broker: broker.to_string(),
            partitions: partitions.to_vec(),
        }
    }

    fn response(leaders: &[(i32, i32)]) -> MetadataResponse {
        MetadataResponse::default()
            .with_brokers(
                [1, 2]
                    .iter()
                    .map(|id| {
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(*id))
                            .with_host(StrBytes::from_string("127.0.0.1".into()))
                            .with_port(9000 + id)
                    })
                    .collect(),
            )
            .with_topics(vec![MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                .with_partitions(
                    leaders
                        .iter()
                        .map(|(partition, leader)| {
                            MetadataResponsePartition::default()
                                .with_partition_index(*partition)
                                .with_leader_id(BrokerId(*leader))
                        })
                        .collect(),
                )])
    }

    #[test]
    fn partitions_are_grouped_by_their_leaders_address() {
        let routes = routes(&response(&[(0, 1), (1, 2), (2, 1)]), "t", &[0, 1, 2]).expect("routes");
        assert_eq!(
            routes,
            vec![
                route("127.0.0.1:9001", &[0, 2]),
                route("127.0.0.1:9002", &[1])
            ]
        );
    }

    #[test]
    fn a_partition_without_a_live_leader_is_not_routed() {
        assert!(routes(&response(&[(0, 1), (1, -1)]), "t", &[0, 1]).is_err());
        assert!(routes(&response(&[(0, 1)]), "t", &[0, 1]).is_err());
        assert!(routes(&response(&[(0, 1)]), "other", &[0]).is_err());
    }

    #[test]
    fn connections_are_shared_out_by_partitions_led() {
        let routes = [route("a", &[0, 1, 2, 3]), route("b", &[4, 5])];
        assert_eq!(
            deal(&routes, 3),
            vec![
                route("a", &[0, 2]),
                route("a", &[1, 3]),
                route("b", &[4, 5])
            ]
        );
        // At least one connection per leader, at most one per partition.
        assert_eq!(deal(&routes, 1).len(), 2);
        assert_eq!(deal(&routes, 100).len(), 6);
    }
}
