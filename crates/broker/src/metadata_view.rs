//! The metadata view: this node's id, its static settings and the metadata
//! quorum's current image, with the broker-config lookups layered as Kafka
//! layers them (dynamic per-broker, dynamic cluster default, static,
//! default). What a handler needs to answer from metadata, without the rest
//! of the broker.

use std::sync::Arc;

use sluice_meta::{ClusterImage, MetadataQuorum};

use crate::config::{self, Settings};

pub struct MetadataView {
    node_id: i32,
    settings: Arc<Settings>,
    quorum: Arc<MetadataQuorum>,
}

impl MetadataView {
    pub fn new(node_id: i32, settings: Arc<Settings>, quorum: Arc<MetadataQuorum>) -> MetadataView {
        MetadataView {
            node_id,
            settings,
            quorum,
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// Effective static broker settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<ClusterImage> {
        self.quorum.image()
    }

    /// The metadata quorum (its leader, proposals).
    pub fn quorum(&self) -> &Arc<MetadataQuorum> {
        &self.quorum
    }

    /// The controller id Metadata and DescribeCluster give clients. A single
    /// node names itself. In a cluster, as Kafka in KRaft mode does, a
    /// broker that forwards admin requests to the active controller (clients
    /// cannot reach the controllers): this broker when it is unfenced, else
    /// a random unfenced one, or -1 when none is. Kafka picks a random alive
    /// broker every time; naming the broker that answers is the one choice
    /// known to be reachable (a broker killed a moment ago stays unfenced
    /// until its session expires, and a client sent there waits it out), and
    /// it keeps an admin client's write and its next read on one broker.
    /// `sluice cluster info` learns the active controller from
    /// DescribeQuorum.
    pub fn controller_id(&self) -> i32 {
        let image = self.quorum.image();
        if image.brokers.len() <= 1 {
            return self.quorum.leader_id().unwrap_or(self.node_id);
        }
        if image
            .brokers
            .get(&self.node_id)
            .is_some_and(|broker| !broker.fenced)
        {
            return self.node_id;
        }
        let unfenced: Vec<i32> = image
            .brokers
            .values()
            .filter(|broker| !broker.fenced)
            .map(|broker| broker.node_id)
            .collect();
        use rand::seq::SliceRandom;
        unfenced
            .choose(&mut rand::thread_rng())
            .copied()
            .unwrap_or(-1)
    }

    /// The dynamic broker configs of the current metadata image.
    pub fn dynamic_configs(&self) -> config::DynamicBrokerConfigs {
        config::DynamicBrokerConfigs::from_image(&self.quorum.image(), self.node_id)
    }

    /// A broker config's effective value (dynamic, static, default).
    pub fn broker_config(&self, name: &str) -> String {
        // Looked up in place (no copy of the dynamic config maps): Fetch
        // calls this on every request. Same layering as `broker_value`.
        let image = self.quorum.image();
        let dynamic = [Some(self.node_id), None]
            .into_iter()
            .find_map(|node| image.broker_configs.get(&node).and_then(|m| m.get(name)));
        match dynamic {
            Some(value) => value.clone(),
            None => self.settings.get(name),
        }
    }

    /// A numeric broker config's effective value (`config::parse_number`).
    pub fn broker_config_i64(&self, name: &str) -> i64 {
        config::parse_number(name, &self.broker_config(name))
    }
}
