//! Static membership (KIP-345, `group.instance.id`): a static member that
//! restarts within its session timeout takes its old place back without a
//! rebalance — the other member's assignment is never revoked.

mod common;
#[path = "common/group.rs"]
mod group;

use std::time::Duration;

use common::{create_topic, start_in_process, topic_name};
use group::{
    assigned, close_within, group_consumer, is_split, poll_until, GROUP_BROKER_SETTINGS,
    REBALANCE_TIMEOUT,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_restarts_without_a_rebalance() {
    let broker = start_in_process(GROUP_BROKER_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = topic_name("static");
    let group = topic_name("static-group");
    create_topic(bootstrap, &topic, 6).await;
    // A session long enough that the restarting member is not expired meanwhile.
    let as_a = [
        ("group.instance.id", "member-a"),
        ("session.timeout.ms", "30000"),
    ];
    let as_b = [
        ("group.instance.id", "member-b"),
        ("session.timeout.ms", "30000"),
    ];
    let (a, a_events) = group_consumer(bootstrap, &group, &topic, &as_a);
    let (b, _) = group_consumer(bootstrap, &group, &topic, &as_b);
    poll_until(&[&a, &b], REBALANCE_TIMEOUT, "3+3", |x| {
        is_split(x, 6, &[3, 3])
    });
    let a_before = assigned(&a);
    let b_before = assigned(&b);
    let seen = a_events.events().len();

    eprintln!("phase: member b closes (a static member sends no LeaveGroup) and restarts");
    close_within(b, Duration::from_secs(30));
    // Keep a polling while b is away, as a live member does.
    poll_until(
        &[&a],
        Duration::from_secs(2),
        "a keeps its partitions",
        |x| x[0] == a_before,
    );
    let (b, _) = group_consumer(bootstrap, &group, &topic, &as_b);
    poll_until(
        &[&a, &b],
        REBALANCE_TIMEOUT,
        "b gets its partitions back",
        |x| x[0] == a_before && x[1] == b_before,
    );

    eprintln!("phase: a few more heartbeats: still no rebalance for a");
    let window = std::time::Instant::now() + Duration::from_secs(3);
    poll_until(&[&a, &b], Duration::from_secs(30), "quiet window", |x| {
        assert_eq!(x[0], a_before, "a's assignment changed");
        std::time::Instant::now() > window
    });
    let events: Vec<_> = a_events.events().into_iter().skip(seen).collect();
    assert!(
        events.is_empty(),
        "member a saw rebalance callbacks while b restarted: {events:?}"
    );
}
