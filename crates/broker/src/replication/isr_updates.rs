//! The leader's ISR task (Kafka's `Partition.maybeExpandIsr` on a follower's
//! fetch and the `isr-expiration` task that calls `maybeShrinkIsr` every
//! half `replica.lag.time.max.ms`): asks `LeaderIsr` what should change and
//! sends it to the controller with AlterPartition. The change is in force
//! once the image shows it (`Partition::apply_state`).

use std::sync::Arc;
use std::time::Duration;

use sluice_meta::{ClusterImage, LeaderRecoveryState};
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
        let image = state.metadata.image();
        for partition in state.replicas.all() {
            if let Some(request) =
                proposal(&partition, &image, state.metadata.node_id(), now, lag_ms)
            {
                let state = state.clone();
                tokio::spawn(async move { send(&state, &partition, request).await });
            }
        }
    }
}

/// The ISR change a led partition needs now (expansion first), marked
/// pending. A follower may join only while `image` shows its broker
/// registered, unfenced and of the broker epoch its fetches carry.
fn proposal(
    partition: &Partition,
    image: &ClusterImage,
    node_id: i32,
    now_ms: i64,
    lag_ms: i64,
) -> Option<AlterPartition> {
    let high_watermark = partition.high_watermark();
    let leader_end = partition.log.log_end_offset();
    let eligible = |replica: i32, broker_epoch: i64| {
        image.brokers.get(&replica).is_some_and(|broker| {
            !broker.fenced && (broker_epoch < 0 || broker.broker_epoch == broker_epoch)
        })
    };
    let mut leader_isr = partition.leader_isr.lock();
    let isr = leader_isr.as_mut()?;
    let proposal = isr.next_change(high_watermark, leader_end, now_ms, lag_ms, eligible)?;
    isr.set_pending(&proposal);
    Some(AlterPartition {
        leader_id: node_id,
        topic_id: partition.topic_id,
        partition: partition.index,
        leader_epoch: proposal.leader_epoch,
        partition_epoch: proposal.partition_epoch,
        new_isr: proposal.isr,
        // Leading, it has nothing left to recover (Kafka's makeLeader
        // marks the partition RECOVERED): the controller's RECOVERING
        // after an unclean election ends with this change.
        leader_recovery_state: LeaderRecoveryState::Recovered,
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
            // Dropped at once, so the high watermark stops waiting for a
            // member that will not join; a refused member (still fenced,
            // say) is not proposed again at once on its every fetch.
            let retry_at = clock::now_ms() + REFUSED_RETRY_DELAY.as_millis() as i64;
            if let Some(isr) = partition.leader_isr.lock().as_mut() {
                isr.refused(retry_at);
            }
            partition.maybe_advance_high_watermark();
            return;
        }
    }
    // Committed: the image has the outcome.
    if let Some(isr) = partition.leader_isr.lock().as_mut() {
        isr.clear_pending();
    }
}
