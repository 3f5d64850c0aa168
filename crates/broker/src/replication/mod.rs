//! Replication between brokers: followers fetch from leaders
//! (`fetcher`), over a plain Kafka-protocol connection (`client`); leaders
//! change their ISR through the controller (`isr_updates`). The rules are
//! the pure `crate::isr::LeaderIsr` and `crate::high_watermark`; the
//! leader's side of a follower's fetch is in `crate::replica_fetch`.

pub(crate) mod client;
pub(crate) mod fetcher;
pub(crate) mod isr_updates;
