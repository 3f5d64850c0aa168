//! sluice-broker: the server.
//!
//! Layers a request passes through: `net::frame` (length prefix, bound) →
//! `net::connection` (one task per connection, strictly in order) →
//! `dispatch` (version gate, decode) → `handlers::<api family>` →
//! `replica_manager` / `controller` → sluice-log / sluice-meta.
//!
//! CONTRACT used by crates/cli (`sluice serve`): `BrokerConfig`, `Broker::start`,
//! `Broker::local_addr`, `Broker::shutdown`.

pub mod clock;
pub mod config;
pub mod controller;
pub mod coordinator_partitions;
pub mod coordinator_topics;
pub mod dispatch;
pub mod error_codes;
pub mod errors;
pub mod fatal;
pub mod group;
pub mod handlers;
pub mod high_watermark;
pub mod internal_topic;
pub mod isr;
pub mod lease;
pub mod metadata_view;
pub mod net;
pub mod partition;
pub mod producer_ids;
pub mod replica_fetch;
pub mod replica_manager;
mod replication;
pub mod roles;
pub mod server;
pub mod state;
mod tasks;
pub mod txn;

pub use roles::ProcessRoles;
pub use server::{
    Broker, BrokerConfig, BrokerError, FatalError, EXIT_INTERNAL_FAILURE, EXIT_STORAGE_FAILURE,
};
pub use state::BrokerState;
