//! The leader's ISR task (Kafka's `Partition.maybeExpandIsr` on a follower's
//! fetch and the `isr-expiration` task that calls `maybeShrinkIsr` every
//! half `replica.lag.time.max.ms`): asks `LeaderIsr` what should change and
//! sends it to the controller with AlterPartition. The change is in force
//! once the image shows it (`Partition::apply_state`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock;
use crate::controller::alter_partition::AlterPartition;
use crate::partition::Partition;
use crate::state::BrokerState;

/// How long a refused ISR change waits before the next proposal.
const REFUSED_RETRY_DELAY: Duration = Duration::from_millis(500);

/// Checks every led partition's ISR on a follower's wake-up and every half
/// lag time, until `shutdown`.
pub(crate) async fn run_isr_updates(state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    let lag_ms = state
        .metadata
        .settings()
        .get_i64("replica.lag.time.max.ms")
        .max(1);
    let every = Duration::from_millis((lag_ms / 2).clamp(10, 5_000) as u64);
    let wakeup = state.replicas.isr_wakeup.clone();
    loop {
        tokio::select! {
            _ = wakeup.notified() => {}
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let now = clock::now_ms();
        for partition in state.replicas.all() {
            if let Some(request) = proposal(&partition, state.metadata.node_id(), now, lag_ms) {
                let state = state.clone();
                tokio::spawn(async move { send(&state, &partition, request).await });
            }
        }
    }
}

/// The ISR change a led partition needs now (expansion first), marked
/// pending.
fn proposal(
    partition: &Partition,
    node_id: i32,
    now_ms: i64,
    lag_ms: i64,
) -> Option<AlterPartition> {
    let high_watermark = partition.high_watermark();
    let leader_end = partition.log.log_end_offset();
    let mut leader_isr = partition.leader_isr.lock();
    let isr = leader_isr.as_mut()?;
    let proposal = isr
        .expansion(high_watermark)
        .or_else(|| isr.shrink(leader_end, now_ms, lag_ms))?;
    isr.set_pending(&proposal);
    Some(AlterPartition {
        leader_id: node_id,
        topic_id: partition.topic_id,
        partition: partition.index,
        leader_epoch: proposal.leader_epoch,
        partition_epoch: proposal.partition_epoch,
        new_isr: proposal.isr,
    })
}

async fn send(state: &BrokerState, partition: &Partition, request: AlterPartition) {
    let new_isr: Vec<i32> = request
        .new_isr
        .iter()
        .map(|(replica, _)| *replica)
        .collect();
    match state.controller.alter_partition(request).await {
        Ok(partition_epoch) => {
            tracing::info!(topic = %partition.topic, partition = partition.index, isr = ?new_isr,
                partition_epoch, "ISR changed");
        }
        Err(error) => {
            tracing::info!(topic = %partition.topic, partition = partition.index, isr = ?new_isr,
                code = error.code, message = %error.message, "ISR change refused");
            // A refused member (still fenced, say) is not proposed again at
            // once on its every fetch.
            tokio::time::sleep(REFUSED_RETRY_DELAY).await;
        }
    }
    // Settled either way: the image has the outcome (or the next check
    // proposes again, on the state it then has).
    if let Some(isr) = partition.leader_isr.lock().as_mut() {
        isr.clear_pending();
    }
}
