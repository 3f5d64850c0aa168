//! Three voters of the metadata quorum in one process, on 127.0.0.1 with
//! ephemeral ports and temp data dirs: formation in any order, failover,
//! rejoin, a node of another cluster, and bad frames on the controller port.
//! Every wait polls against a deadline; none assumes a fast machine.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sluice_meta::{
    BrokerRegistration, ClusterImage, MetaError, MetadataQuorum, MetadataRecord, QuorumConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Bound of one step (an open, a proposal, a wait for agreement).
const STEP_TIMEOUT: Duration = Duration::from_secs(40);
/// Pause between two looks at a condition.
const POLL: Duration = Duration::from_millis(50);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "sluice_meta=info".into()),
        )
        .with_test_writer()
        .try_init();
}

async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP_TIMEOUT, future).await {
        Ok(value) => value,
        Err(_) => panic!("step timed out: {what}"),
    }
}

/// Polls `condition` until it holds, failing the test after `STEP_TIMEOUT`.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// One voter's fixed parts: its id, data dir and controller address.
struct Voter {
    node_id: i32,
    dir: PathBuf,
    address: SocketAddr,
}

/// Three voters with fresh temp dirs and bound (not yet served) listeners.
fn three_voters(root: &Path) -> (Vec<Voter>, Vec<TcpListener>) {
    let mut voters = Vec::new();
    let mut listeners = Vec::new();
    for node_id in 1..=3 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a controller port");
        voters.push(Voter {
            node_id,
            dir: root.join(format!("node-{node_id}")),
            address: listener.local_addr().expect("the bound address"),
        });
        listeners.push(listener);
    }
    (voters, listeners)
}

fn config(voters: &[Voter], node_id: i32) -> QuorumConfig {
    QuorumConfig {
        node_id,
        voters: voters
            .iter()
            .map(|v| (v.node_id, v.address.to_string()))
            .collect(),
    }
}

async fn open(
    voters: &[Voter],
    index: usize,
    dir: &Path,
    listener: TcpListener,
) -> Result<MetadataQuorum, MetaError> {
    let config = config(voters, voters[index].node_id);
    bounded("open", MetadataQuorum::open_voter(dir, config, listener)).await
}

/// Opens every voter at once, in tasks.
async fn open_all(
    voters: &Arc<Vec<Voter>>,
    listeners: Vec<TcpListener>,
) -> Vec<Arc<MetadataQuorum>> {
    let mut tasks = Vec::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        let voters = voters.clone();
        tasks.push(tokio::spawn(async move {
            let dir = voters[index].dir.clone();
            open(&voters, index, &dir, listener).await
        }));
    }
    let mut quorums = Vec::new();
    for task in tasks {
        quorums.push(Arc::new(task.await.expect("open task").expect("open")));
    }
    quorums
}

fn register(node_id: i32) -> MetadataRecord {
    MetadataRecord::RegisterBroker(BrokerRegistration {
        node_id,
        host: "localhost".to_string(),
        port: 9092,
        rack: None,
        ..BrokerRegistration::default()
    })
}

/// The leader all `quorums` agree on, other than `not`.
async fn agreed_leader(quorums: &[&MetadataQuorum], not: Option<i32>) -> i32 {
    let mut leader = None;
    eventually("one leader all agree on", || {
        let seen: Vec<Option<i32>> = quorums.iter().map(|q| q.leader_id()).collect();
        leader = seen[0];
        leader.is_some() && leader != not && seen.iter().all(|s| *s == leader)
    })
    .await;
    leader.unwrap_or_default()
}

/// Proposes on whichever of `quorums` leads, retrying while leadership moves.
async fn propose(quorums: &[&MetadataQuorum], records: Vec<MetadataRecord>) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let leader = quorums.iter().find(|q| q.leader_id() == Some(q.node_id()));
        if let Some(leader) = leader {
            match bounded("propose", leader.propose(records.clone())).await {
                Ok(_) => return,
                Err(MetaError::NotLeader { .. }) => {}
                Err(other) => panic!("proposal failed: {other}"),
            }
        }
        assert!(Instant::now() < deadline, "no leader took the proposal");
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until every image has `node_id` registered and all are equal.
async fn images_agree(quorums: &[&MetadataQuorum], node_id: i32) -> ClusterImage {
    eventually("all images to agree", || {
        let images: Vec<_> = quorums.iter().map(|q| q.image()).collect();
        images[0].brokers.contains_key(&node_id) && images.iter().all(|i| **i == *images[0])
    })
    .await;
    (*quorums[0].image()).clone()
}

fn stored_cluster_id(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("meta").join("cluster.id"))
        .expect("meta/cluster.id")
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_form_fail_over_and_rejoin() {
    init_tracing();
    let root = tempfile::tempdir().unwrap();
    let (voters, listeners) = three_voters(root.path());
    let voters = Arc::new(voters);

    tracing::info!("phase: three voters start at once");
    let mut quorums = open_all(&voters, listeners).await;
    let all: Vec<&MetadataQuorum> = quorums.iter().map(|q| &**q).collect();
    let leader = agreed_leader(&all, None).await;
    let cluster_id = all[0].cluster_id();
    assert_eq!(cluster_id.len(), 22);
    for (quorum, voter) in all.iter().zip(voters.iter()) {
        assert_eq!(quorum.cluster_id(), cluster_id);
        assert_eq!(stored_cluster_id(&voter.dir), cluster_id);
    }

    tracing::info!("phase: a proposal reaches every image; a follower refuses");
    propose(&all, vec![register(1)]).await;
    let image = images_agree(&all, 1).await;
    assert_eq!(image.cluster_id, cluster_id);
    let follower = all.iter().find(|q| q.node_id() != leader).unwrap();
    match bounded("follower propose", follower.propose(vec![register(9)])).await {
        Err(MetaError::NotLeader { leader: Some(_) }) => {}
        other => panic!("expected NotLeader from a follower, got {other:?}"),
    }

    tracing::info!(leader, "phase: the leader stops; the others elect another");
    let leader_index = voters.iter().position(|v| v.node_id == leader).unwrap();
    let stopped = quorums.remove(leader_index);
    bounded("shutdown", stopped.shutdown()).await.unwrap();
    drop(stopped);
    let rest: Vec<&MetadataQuorum> = quorums.iter().map(|q| &**q).collect();
    let new_leader = agreed_leader(&rest, Some(leader)).await;
    assert_ne!(new_leader, leader);
    propose(&rest, vec![register(2)]).await;
    images_agree(&rest, 2).await;

    tracing::info!("phase: the stopped voter restarts on its data dir and catches up");
    let voter = &voters[leader_index];
    let listener = TcpListener::bind(voter.address).unwrap();
    let restarted = open(&voters, leader_index, &voter.dir, listener)
        .await
        .unwrap();
    assert_eq!(restarted.cluster_id(), cluster_id);
    quorums.insert(leader_index, Arc::new(restarted));
    let all: Vec<&MetadataQuorum> = quorums.iter().map(|q| &**q).collect();
    images_agree(&all, 2).await;
    propose(&all, vec![register(3)]).await;
    images_agree(&all, 3).await;

    for quorum in &all {
        bounded("shutdown", quorum.shutdown()).await.unwrap();
    }
}

/// Writes `bytes` to `address` and expects the node to close the connection.
async fn closes_after(address: SocketAddr, bytes: &[u8]) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut buffer = [0u8; 64];
    let read = bounded("close", stream.read(&mut buffer)).await;
    // Closed: end of stream, or a reset for the unread bytes.
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "connection stayed open: {read:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staggered_start_foreign_node_and_bad_frames() {
    init_tracing();
    let root = tempfile::tempdir().unwrap();
    let (voters, listeners) = three_voters(&root.path().join("b"));
    let voters = Arc::new(voters);
    let (other_voters, other_listeners) = three_voters(&root.path().join("c"));
    let other_voters = Arc::new(other_voters);

    tracing::info!("phase: cluster B starts one voter at a time (3, 1, 2); cluster C at once");
    let other = tokio::spawn(async move {
        let quorums = open_all(&other_voters, other_listeners).await;
        let all: Vec<&MetadataQuorum> = quorums.iter().map(|q| &**q).collect();
        propose(&all, vec![register(7)]).await;
        let cluster_id = all[0].cluster_id();
        for quorum in &all {
            bounded("shutdown", quorum.shutdown()).await.unwrap();
        }
        (cluster_id, other_voters)
    });
    let mut listeners: Vec<Option<TcpListener>> = listeners.into_iter().map(Some).collect();
    let mut tasks = BTreeMap::new();
    for index in [2, 0, 1] {
        let voters = voters.clone();
        let listener = listeners[index].take().unwrap();
        tasks.insert(
            index,
            tokio::spawn(async move {
                let dir = voters[index].dir.clone();
                open(&voters, index, &dir, listener).await
            }),
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let mut quorums = Vec::new();
    for (_, task) in tasks {
        quorums.push(task.await.expect("open task").expect("open"));
    }
    let all: Vec<&MetadataQuorum> = quorums.iter().collect();
    agreed_leader(&all, None).await;
    propose(&all, vec![register(1)]).await;
    images_agree(&all, 1).await;
    let cluster_id = all[0].cluster_id();
    let (other_cluster_id, other_voters) = bounded("cluster C", other).await.unwrap();
    assert_ne!(cluster_id, other_cluster_id);

    tracing::info!("phase: a garbage frame and an oversized length close their connections");
    let mut garbage = 9u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(b"not json!");
    closes_after(voters[0].address, &garbage).await;
    closes_after(voters[1].address, &u32::MAX.to_be_bytes()).await;
    propose(&all, vec![register(2)]).await;
    images_agree(&all, 2).await;

    tracing::info!("phase: node 2 of cluster C starts in node 2's place and is refused");
    let stopped = quorums.remove(1);
    bounded("shutdown", stopped.shutdown()).await.unwrap();
    drop(stopped);
    let listener = TcpListener::bind(voters[1].address).unwrap();
    let foreign = open(&voters, 1, &other_voters[1].dir, listener).await;
    match foreign {
        Err(error @ MetaError::ClusterIdMismatch { .. }) => {
            let text = error.to_string();
            assert!(
                text.contains(&cluster_id) && text.contains(&other_cluster_id),
                "{text}"
            );
            assert!(text.contains("another cluster"), "{text}");
        }
        Err(other) => panic!("expected ClusterIdMismatch, got {other}"),
        Ok(_) => panic!("a node of another cluster joined"),
    }

    tracing::info!("phase: the two left still take proposals");
    let rest: Vec<&MetadataQuorum> = quorums.iter().collect();
    propose(&rest, vec![register(3)]).await;
    images_agree(&rest, 3).await;
    for quorum in &rest {
        bounded("shutdown", quorum.shutdown()).await.unwrap();
    }
}

/// Opens node `node_id` as an observer of `voters` on a new ephemeral port.
async fn open_observer(
    voters: &[Voter],
    node_id: i32,
    dir: &Path,
) -> Result<MetadataQuorum, MetaError> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an observer port");
    let address = listener
        .local_addr()
        .expect("the bound address")
        .to_string();
    let config = config(voters, node_id);
    bounded(
        "open an observer",
        MetadataQuorum::open_observer(dir, config, listener, address),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observers_follow_the_log_and_never_vote() {
    init_tracing();
    let root = tempfile::tempdir().unwrap();
    let (voters, listeners) = three_voters(root.path());
    let voters = Arc::new(voters);
    let quorums = open_all(&voters, listeners).await;
    let voting: Vec<&MetadataQuorum> = quorums.iter().map(|q| &**q).collect();
    let leader = agreed_leader(&voting, None).await;
    propose(&voting, vec![register(1)]).await;

    tracing::info!("phase: two observers join and catch up");
    let dir4 = root.path().join("node-4");
    let dir5 = root.path().join("node-5");
    let four = open_observer(&voters, 4, &dir4).await.expect("observer 4");
    let five = open_observer(&voters, 5, &dir5).await.expect("observer 5");
    assert!(four.is_observer() && five.is_observer());
    assert_eq!(four.cluster_id(), voting[0].cluster_id());
    assert!(
        four.image().brokers.contains_key(&1),
        "observer 4 caught up"
    );
    propose(&voting, vec![register(2)]).await;
    let everyone = [voting.clone(), vec![&four, &five]].concat();
    images_agree(&everyone, 2).await;
    let status = quorums
        .iter()
        .find(|q| q.node_id() == leader)
        .expect("the leader")
        .quorum_status();
    let observer_ids: Vec<i32> = status.observers.iter().map(|o| o.replica_id).collect();
    let voter_ids: Vec<i32> = status.voters.iter().map(|v| v.replica_id).collect();
    assert_eq!(observer_ids, vec![4, 5], "{status:?}");
    assert_eq!(voter_ids, vec![1, 2, 3], "{status:?}");
    match bounded("observer propose", four.propose(vec![register(9)])).await {
        Err(MetaError::NotLeader { .. }) => {}
        other => panic!("expected NotLeader from an observer, got {other:?}"),
    }

    tracing::info!("phase: a voter's id cannot join as an observer");
    let refused = open_observer(&voters, 2, &root.path().join("impostor")).await;
    assert!(refused.is_err(), "a voter id joined as an observer");

    tracing::info!("phase: an observer restarts on another port and follows on");
    bounded("shutdown", four.shutdown()).await.unwrap();
    drop(four);
    propose(&voting, vec![register(3)]).await;
    let four = open_observer(&voters, 4, &dir4)
        .await
        .expect("observer 4 again");
    let everyone = [voting.clone(), vec![&four, &five]].concat();
    images_agree(&everyone, 3).await;

    tracing::info!("phase: the observers never lead, whatever the voters do");
    for quorum in &everyone {
        assert_ne!(quorum.leader_id(), Some(4));
        assert_ne!(quorum.leader_id(), Some(5));
    }
    for quorum in [&four, &five] {
        bounded("shutdown", quorum.shutdown()).await.unwrap();
    }
    for quorum in &voting {
        bounded("shutdown", quorum.shutdown()).await.unwrap();
    }
}
