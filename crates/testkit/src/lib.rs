//! sluice-testkit: what the tests of every crate share, used only as a
//! dev-dependency (never published).
//!
//! - [`batch`]: the one RecordBatch v2 builder (keys, values, headers,
//!   producer id/epoch/sequence, transactional and control batches, every
//!   codec) and the patches tests apply to a built batch (CRC, record count,
//!   codec, records section).
//! - [`ports`]: ports reserved for listeners whose address must be known
//!   before they open (voter lists), from below the ephemeral range.
//! - `cluster` (feature `cluster`): [`TestCluster`], brokers started inside
//!   the test process on ephemeral ports with temporary data directories.
//!
//! The batch builder depends on kafka-protocol, bytes and crc32c only, so
//! sluice-log's tests use it without building the broker. The cluster needs
//! sluice-broker and sits behind the `cluster` feature, which only the
//! crates above the broker turn on.

pub mod batch;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod ports;

pub use batch::{Compression, RecordBatchBuilder, TestRecord};
#[cfg(feature = "cluster")]
pub use cluster::{ClusterError, TestCluster, TestNode};
