//! sluice-broker: the server.
//!
//! CONTRACT used by crates/cli (`sluice serve`): `BrokerConfig`, `Broker::start`,
//! `Broker::local_addr`, `Broker::shutdown`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("{0}")]
    Config(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Log(#[from] sluice_log::LogError),
    #[error(transparent)]
    Meta(#[from] sluice_meta::MetaError),
}

/// What `sluice serve` was asked to run.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Address the Kafka listener binds (port 0: any free port).
    pub listen: String,
    /// host:port clients are told to connect to; defaults to the bound address.
    pub advertised_listener: Option<String>,
    pub data_dir: PathBuf,
    pub node_id: i32,
    /// `controller.quorum.voters` as (id, host:port); empty = this node alone.
    pub controller_voters: Vec<(i32, String)>,
    /// Any broker config by Kafka's name (`--set KEY=VALUE`, config file).
    pub settings: BTreeMap<String, String>,
}

pub struct Broker {
    _private: (),
}

impl Broker {
    pub async fn start(config: BrokerConfig) -> Result<Broker, BrokerError> {
        let _ = config;
        todo!()
    }

    pub fn local_addr(&self) -> SocketAddr {
        todo!()
    }

    /// Stops accepting, lets connections finish their current request, flushes
    /// and closes every log, writes checkpoints and `.clean-shutdown`.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        todo!()
    }
}
