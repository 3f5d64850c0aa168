//! The state machine with a controlled clock: events in, outputs out.

use bytes::Bytes;

use super::*;
use crate::error_codes;
use crate::errors::{code_of, KafkaError};

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

/// A group plus the clock and the outputs seen so far.
struct Harness {
    /// The group under test.
    group: Group,
    /// Current time.
    now: i64,
    /// Next request token.
    next_token: Token,
    /// Every output not yet taken.
    outputs: Vec<Output>,
}

fn protocols(names: &[&str]) -> Vec<(String, Bytes)> {
    names
        .iter()
        .map(|n| (n.to_string(), Bytes::from(format!("meta-{n}"))))
        .collect()
}

fn request(member_id: &str, instance: Option<&str>, names: &[&str]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: instance.map(str::to_string),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: protocols(names),
        require_known_member_id: true,
        supports_skip_assignment: true,
        generated_member_id: String::new(),
    }
}

impl Harness {
    fn new(config: GroupConfig) -> Harness {
        Harness {
            group: Group::new("g", config, 0),
            now: 0,
            next_token: 1,
            outputs: Vec::new(),
        }
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        self.next_token
    }

    fn join_with(&mut self, mut request: JoinRequest) -> Token {
        let token = self.token();
        let prefix = request
            .group_instance_id
            .clone()
            .unwrap_or(request.client_id.clone());
        request.generated_member_id = format!("{prefix}-m{token}");
        let out = self.group.join(self.now, token, request);
        self.outputs.extend(out);
        token
    }

    /// A dynamic member joining the KIP-394 way; returns its id and the
    /// token of its parked second JoinGroup.
    fn join_new(&mut self, names: &[&str]) -> (String, Token) {
        let first = self.join_with(request("", None, names));
        let required = self.take_join(first).expect("MEMBER_ID_REQUIRED");
        assert_eq!(required.error_code(), error_codes::MEMBER_ID_REQUIRED);
        let member_id = required.member_id.clone();
        let token = self.join_with(request(&member_id, None, names));
        (member_id, token)
    }

    fn sync(&mut self, member_id: &str, generation_id: i32, assignments: &[(&str, &str)]) -> Token {
        let token = self.token();
        let request = SyncRequest {
            member_id: member_id.to_string(),
            generation_id,
            assignments: assignments
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
                .collect(),
            ..Default::default()
        };
        let out = self.group.sync(self.now, token, request);
        self.outputs.extend(out);
        token
    }

    /// Moves the clock, firing timers in order.
    fn advance(&mut self, ms: i64) {
        let target = self.now + ms;
        while let Some(deadline) = self.group.next_deadline().filter(|d| *d <= target) {
            self.now = deadline.max(self.now);
            let out = self.group.tick(self.now);
            self.outputs.extend(out);
        }
        self.now = target;
    }

    fn take_join(&mut self, token: Token) -> Option<JoinResult> {
        let index = self
            .outputs
            .iter()
            .position(|o| matches!(o, Output::Join(t, _) if *t == token))?;
        match self.outputs.remove(index) {
            Output::Join(_, result) => Some(result),
            _ => None,
        }
    }

    fn take_sync(&mut self, token: Token) -> Option<SyncResult> {
        let index = self
            .outputs
            .iter()
            .position(|o| matches!(o, Output::Sync(t, _) if *t == token))?;
        match self.outputs.remove(index) {
            Output::Sync(_, result) => Some(result),
            _ => None,
        }
    }

    /// Two dynamic members through the first rebalance to Stable;
    /// returns (leader, follower).
    fn stable_pair(&mut self) -> (String, String) {
        let (a, ta) = self.join_new(&["range"]);
        let (b, tb) = self.join_new(&["range"]);
        self.advance(10_000);
        let ra = self.take_join(ta).expect("join a");
        let rb = self.take_join(tb).expect("join b");
        let leader = ra.leader.clone();
        let follower = if leader == a { b.clone() } else { a.clone() };
        assert_eq!(rb.leader, leader);
        let generation = ra.generation_id;
        let tf = self.sync(&follower, generation, &[]);
        let tl = self.sync(&leader, generation, &[(&a, "A"), (&b, "B")]);
        assert_eq!(
            self.take_sync(tl).map(|r| r.error_code()),
            Some(error_codes::NONE)
        );
        assert_eq!(
            self.take_sync(tf).map(|r| r.error_code()),
            Some(error_codes::NONE)
        );
        assert_eq!(self.group.state, GroupState::Stable);
        (leader, follower)
    }
}

#[test]
fn first_rebalance_waits_for_the_initial_delay_and_extends_it() {
    let mut h = Harness::new(GroupConfig::default());
    let (a, ta) = h.join_new(&["range"]);
    assert!(a.starts_with("client-"));
    assert_eq!(h.group.state, GroupState::PreparingRebalance);
    h.advance(2_000);
    let (_b, tb) = h.join_new(&["range"]);
    h.advance(1_000); // t=3000: a member arrived during the delay: extended
    assert!(h.take_join(ta).is_none());
    h.advance(2_999);
    assert!(h.take_join(ta).is_none());
    h.advance(1); // t=6000
    let ra = h.take_join(ta).expect("completed");
    let rb = h.take_join(tb).expect("completed");
    assert_eq!((ra.error_code(), ra.generation_id), (error_codes::NONE, 1));
    assert_eq!(ra.protocol_name.as_deref(), Some("range"));
    assert_eq!(ra.protocol_type.as_deref(), Some("consumer"));
    let leader_members = if ra.leader == ra.member_id {
        &ra.members
    } else {
        &rb.members
    };
    assert_eq!(leader_members.len(), 2);
    assert_eq!(leader_members[0].metadata, Bytes::from("meta-range"));
    let follower_members = if ra.leader == ra.member_id {
        &rb.members
    } else {
        &ra.members
    };
    assert!(follower_members.is_empty());
    assert_eq!(h.group.state, GroupState::CompletingRebalance);
}

#[test]
fn sync_hands_each_member_its_bytes_after_the_leader_syncs() {
    let mut h = Harness::new(GroupConfig::default());
    let (leader, follower) = h.stable_pair();
    let expected_follower = if follower < leader { "A" } else { "B" };
    let _ = expected_follower;
    // A Stable group answers a late SyncGroup with the stored assignment.
    let t = h.sync(&follower, 1, &[]);
    let r = h.take_sync(t).expect("answered at once");
    assert!(r.assignment == "A" || r.assignment == "B");
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(h.group.assignment_of(&follower), r.assignment);
    assert_ne!(h.group.assignment_of(&leader), r.assignment);
}

#[test]
fn follower_sync_is_parked_until_the_leader_syncs() {
    let mut h = Harness::new(GroupConfig::default());
    let (a, ta) = h.join_new(&["range"]);
    let (b, tb) = h.join_new(&["range"]);
    h.advance(10_000);
    let ra = h.take_join(ta).unwrap();
    h.take_join(tb).unwrap();
    let (leader, follower) = if ra.leader == a { (a, b) } else { (b, a) };
    let tf = h.sync(&follower, 1, &[]);
    assert!(h.take_sync(tf).is_none());
    let tl = h.sync(&leader, 1, &[(&follower, "F"), (&leader, "L")]);
    assert_eq!(h.take_sync(tf).unwrap().assignment, Bytes::from("F"));
    assert_eq!(h.take_sync(tl).unwrap().assignment, Bytes::from("L"));
}

#[test]
fn heartbeat_errors() {
    let mut h = Harness::new(GroupConfig::default());
    let (leader, follower) = h.stable_pair();
    let cases: &[(&str, i32, i16)] = &[
        (&leader, 1, error_codes::NONE),
        (&follower, 0, error_codes::ILLEGAL_GENERATION),
        ("nobody", 1, error_codes::UNKNOWN_MEMBER_ID),
    ];
    for (member, generation, code) in cases {
        assert_eq!(
            code_of(&h.group.heartbeat(h.now, member, None, *generation)),
            *code,
            "{member}"
        );
    }
    // A new member starts a rebalance: current members hear about it.
    let (_c, _tc) = h.join_new(&["range"]);
    assert_eq!(h.group.state, GroupState::PreparingRebalance);
    assert_eq!(
        code_of(&h.group.heartbeat(h.now, &leader, None, 1)),
        error_codes::REBALANCE_IN_PROGRESS
    );
}

#[test]
fn join_barrier_removes_members_that_do_not_rejoin() {
    let mut h = Harness::new(GroupConfig::default());
    let (leader, follower) = h.stable_pair();
    let (c, tc) = h.join_new(&["range"]);
    // The leader rejoins; the follower keeps heartbeating but never rejoins.
    let tl = h.join_with(request(&leader, None, &["range"]));
    for _ in 0..5 {
        h.advance(5_000);
        code_of(&h.group.heartbeat(h.now, &follower, None, 1));
    }
    h.advance(5_000); // rebalance timeout (30 s) passed
    let rl = h.take_join(tl).expect("join completed");
    assert_eq!(rl.generation_id, 2);
    assert!(h.take_join(tc).is_some());
    assert!(!h.group.has_member(&follower));
    assert!(h.group.has_member(&c));
    assert_eq!(h.group.state, GroupState::CompletingRebalance);
}

#[test]
fn session_expiry_removes_a_member_and_rebalances() {
    let mut h = Harness::new(GroupConfig::default());
    let (leader, follower) = h.stable_pair();
    // Only the leader heartbeats; the follower's session (10 s) runs out.
    let mut codes = Vec::new();
    for _ in 0..3 {
        h.advance(4_000);
        codes.push(code_of(&h.group.heartbeat(h.now, &leader, None, 1)));
    }
    let expected = [
        error_codes::NONE,
        error_codes::NONE,
        error_codes::REBALANCE_IN_PROGRESS,
    ];
    assert_eq!(codes, expected);
    assert!(!h.group.has_member(&follower));
    assert_eq!(h.group.state, GroupState::PreparingRebalance);
    assert_eq!(
        code_of(&h.group.heartbeat(h.now, &leader, None, 1)),
        error_codes::REBALANCE_IN_PROGRESS
    );
    let t = h.join_with(request(&leader, None, &["range"]));
    let r = h.take_join(t).expect("sole member: completes at once");
    assert_eq!((r.generation_id, r.members.len()), (2, 1));
}

#[test]
fn join_validation() {
    let config = GroupConfig::default();
    let mut short = request("", None, &["range"]);
    short.session_timeout_ms = 5_999;
    let mut long = request("", None, &["range"]);
    long.session_timeout_ms = 1_800_001;
    let mut default_clients = request("", None, &["range"]);
    default_clients.session_timeout_ms = 45_000;
    default_clients.rebalance_timeout_ms = 300_000;
    let mut no_type = request("", None, &["range"]);
    no_type.protocol_type = String::new();
    let cases: Vec<(&str, JoinRequest, i16)> = vec![
        (
            "session too short",
            short,
            error_codes::INVALID_SESSION_TIMEOUT,
        ),
        (
            "session too long",
            long,
            error_codes::INVALID_SESSION_TIMEOUT,
        ),
        (
            "client defaults",
            default_clients,
            error_codes::MEMBER_ID_REQUIRED,
        ),
        (
            "no protocols",
            request("", None, &[]),
            error_codes::INCONSISTENT_GROUP_PROTOCOL,
        ),
        (
            "no protocol type",
            no_type,
            error_codes::INCONSISTENT_GROUP_PROTOCOL,
        ),
        (
            "unknown member id",
            request("ghost", None, &["range"]),
            error_codes::UNKNOWN_MEMBER_ID,
        ),
    ];
    for (name, join, code) in cases {
        let mut h = Harness::new(config.clone());
        let t = h.join_with(join);
        assert_eq!(h.take_join(t).map(|r| r.error_code()), Some(code), "{name}");
        assert_eq!(h.group.state, GroupState::Empty, "{name}: state unharmed");
    }
}

#[test]
fn protocol_rules_for_a_group_with_members() {
    let mut h = Harness::new(GroupConfig::default());
    h.stable_pair();
    let t = h.join_with(request("", None, &["roundrobin"]));
    assert_eq!(
        h.take_join(t).map(|r| r.error_code()),
        Some(error_codes::INCONSISTENT_GROUP_PROTOCOL)
    );
    let mut other_type = request("", None, &["range"]);
    other_type.protocol_type = "connect".into();
    let t = h.join_with(other_type);
    assert_eq!(
        h.take_join(t).map(|r| r.error_code()),
        Some(error_codes::INCONSISTENT_GROUP_PROTOCOL)
    );
    assert_eq!(h.group.state, GroupState::Stable);
}

#[test]
fn the_protocol_every_member_supports_wins_the_vote() {
    let mut h = Harness::new(GroupConfig::default());
    let (_, ta) = h.join_new(&["range", "roundrobin"]);
    let (_, tb) = h.join_new(&["cooperative-sticky", "roundrobin", "range"]);
    let (_, tc) = h.join_new(&["roundrobin", "range"]);
    h.advance(10_000);
    for t in [ta, tb, tc] {
        assert_eq!(
            h.take_join(t).unwrap().protocol_name.as_deref(),
            Some("roundrobin")
        );
    }
}

#[test]
fn sync_errors_leave_the_group_unharmed() {
    let mut h = Harness::new(GroupConfig::default());
    let (leader, _) = h.stable_pair();
    let t = h.sync(&leader, 7, &[]);
    assert_eq!(
        h.take_sync(t).map(|r| r.error_code()),
        Some(error_codes::ILLEGAL_GENERATION)
    );
    let t = h.token();
    let wrong_name = SyncRequest {
        member_id: leader.clone(),
        generation_id: 1,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("roundrobin".into()),
        ..Default::default()
    };
    let out = h.group.sync(h.now, t, wrong_name);
    h.outputs.extend(out);
    assert_eq!(
        h.take_sync(t).map(|r| r.error_code()),
        Some(error_codes::INCONSISTENT_GROUP_PROTOCOL)
    );
    let t = h.sync("ghost", 1, &[]);
    assert_eq!(
        h.take_sync(t).map(|r| r.error_code()),
        Some(error_codes::UNKNOWN_MEMBER_ID)
    );
    assert_eq!(
        (h.group.state, h.group.generation_id),
        (GroupState::Stable, 1)
    );
}

#[test]
fn group_max_size() {
    let mut h = Harness::new(GroupConfig {
        group_size_max: 1,
        ..GroupConfig::default()
    });
    let (_a, _ta) = h.join_new(&["range"]);
    let tb = h.join_with(request("", None, &["range"]));
    assert_eq!(
        h.take_join(tb).map(|r| r.error_code()),
        Some(error_codes::GROUP_MAX_SIZE_REACHED)
    );
}

#[test]
fn static_member_rejoins_without_a_rebalance_and_fences_the_old_id() {
    let mut h = Harness::new(GroupConfig::default());
    let t1 = h.join_with(request("", Some("i1"), &["range"]));
    let t2 = h.join_with(request("", Some("i2"), &["range"]));
    h.advance(10_000);
    let r1 = h.take_join(t1).unwrap();
    let r2 = h.take_join(t2).unwrap();
    assert!(
        r1.member_id.starts_with("i1-"),
        "member id prefix is the instance id"
    );
    let leader = r1.leader.clone();
    let t = h.sync(
        &leader,
        1,
        &[(&r1.member_id, "one"), (&r2.member_id, "two")],
    );
    h.take_sync(t).unwrap();
    h.sync(&r2.member_id, 1, &[]);
    assert_eq!(h.group.state, GroupState::Stable);
    // The leader restarts: same instance id, no member id.
    let (old_id, instance) = if leader == r1.member_id {
        (r1.member_id.clone(), "i1")
    } else {
        (r2.member_id.clone(), "i2")
    };
    let t = h.join_with(request("", Some(instance), &["range"]));
    let rejoined = h.take_join(t).expect("answered at once");
    assert_eq!(rejoined.error_code(), error_codes::NONE);
    assert_ne!(rejoined.member_id, old_id);
    assert_eq!(rejoined.generation_id, 1, "no rebalance");
    assert!(
        rejoined.skip_assignment,
        "a static leader on v9 skips the assignment"
    );
    assert_eq!(rejoined.leader, rejoined.member_id);
    assert_eq!(rejoined.members.len(), 2);
    assert_eq!(h.group.state, GroupState::Stable);
    assert!(h.outputs.contains(&Output::StoreGroup));
    assert_eq!(
        code_of(&h.group.heartbeat(h.now, &old_id, Some(instance), 1)),
        error_codes::FENCED_INSTANCE_ID
    );
    assert_eq!(
        code_of(
            &h.group
                .heartbeat(h.now, &rejoined.member_id, Some(instance), 1)
        ),
        error_codes::NONE
    );
    assert_eq!(
        h.group
            .validate_offset_commit(&old_id, Some(instance), 1)
            .map_err(KafkaError::code),
        Err(error_codes::FENCED_INSTANCE_ID)
    );
    // Its assignment carried over.
    let t = h.sync(&rejoined.member_id, 1, &[]);
    let bytes = h.take_sync(t).unwrap().assignment;
    assert!(bytes == "one" || bytes == "two");
}

#[test]
fn static_members_are_not_removed_by_the_join_barrier() {
    let mut h = Harness::new(GroupConfig::default());
    let t1 = h.join_with(request("", Some("i1"), &["range"]));
    h.advance(10_000);
    let r1 = h.take_join(t1).unwrap();
    let t = h.sync(&r1.member_id, 1, &[(&r1.member_id, "x")]);
    h.take_sync(t).unwrap();
    let (_b, _tb) = h.join_new(&["range"]);
    h.advance(1_000);
    assert_eq!(
        code_of(&h.group.heartbeat(h.now, &r1.member_id, Some("i1"), 1)),
        error_codes::REBALANCE_IN_PROGRESS
    );
}

#[test]
fn leave_group_in_a_batch() {
    let mut h = Harness::new(GroupConfig::default());
    let (leader, follower) = h.stable_pair();
    let (codes, _) = leave_codes(h.group.leave(
        h.now,
        &[
            LeavingMember {
                member_id: follower.clone(),
                group_instance_id: None,
            },
            LeavingMember {
                member_id: "ghost".into(),
                group_instance_id: None,
            },
        ],
    ));
    assert_eq!(
        codes,
        vec![error_codes::NONE, error_codes::UNKNOWN_MEMBER_ID]
    );
    assert_eq!(h.group.state, GroupState::PreparingRebalance);
    let (codes, out) = leave_codes(h.group.leave(
        h.now,
        &[LeavingMember {
            member_id: leader,
            group_instance_id: None,
        }],
    ));
    assert_eq!(codes, vec![error_codes::NONE]);
    assert!(out.contains(&Output::StoreGroup));
    assert_eq!(
        (h.group.state, h.group.generation_id),
        (GroupState::Empty, 2)
    );
}

#[test]
fn offset_commit_rules() {
    let mut empty = Harness::new(GroupConfig::default());
    assert_eq!(empty.group.validate_offset_commit("", None, -1), Ok(()));
    let mut h = Harness::new(GroupConfig::default());
    let (leader, _) = h.stable_pair();
    let cases: &[(&str, i32, Result<(), i16>)] = &[
        (&leader, 1, Ok(())),
        ("", -1, Err(error_codes::UNKNOWN_MEMBER_ID)),
        (&leader, 0, Err(error_codes::ILLEGAL_GENERATION)),
        ("ghost", 1, Err(error_codes::UNKNOWN_MEMBER_ID)),
    ];
    for (member, generation, expected) in cases {
        assert_eq!(
            h.group
                .validate_offset_commit(member, None, *generation)
                .map_err(KafkaError::code),
            *expected,
            "{member} {generation}"
        );
    }
    // During CompletingRebalance.
    let (_c, tc) = h.join_new(&["range"]);
    let tl = h.join_with(request(&leader, None, &["range"]));
    h.advance(15_000); // the follower's session ends; everyone else rejoined
    assert!(h.take_join(tl).is_some() && h.take_join(tc).is_some());
    assert_eq!(h.group.state, GroupState::CompletingRebalance);
    assert_eq!(
        h.group
            .validate_offset_commit(&leader, None, 2)
            .map_err(KafkaError::code),
        Err(error_codes::REBALANCE_IN_PROGRESS)
    );
    let _ = &mut empty;
}

#[test]
fn delete_and_expire() {
    let mut h = Harness::new(GroupConfig::default());
    h.stable_pair();
    assert_eq!(
        h.group.delete(h.now).map_err(KafkaError::code),
        Err(error_codes::NON_EMPTY_GROUP)
    );

    let mut simple = Harness::new(GroupConfig::default());
    let committed = CommittedOffset {
        offset: 5,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms: 0,
    };
    simple
        .group
        .offsets
        .insert(("t".into(), 0), committed.clone());
    simple.group.offsets.insert(
        ("t".into(), 1),
        CommittedOffset {
            commit_timestamp_ms: 500,
            ..committed
        },
    );
    assert_eq!(simple.group.expire_offsets(999, 1_000), vec![]);
    assert_eq!(
        simple.group.expire_offsets(1_000, 1_000),
        vec![("t".to_string(), 0)]
    );
    assert_eq!(simple.group.state, GroupState::Empty);
    assert_eq!(
        simple.group.expire_offsets(1_500, 1_000),
        vec![("t".to_string(), 1)]
    );
    assert_eq!(simple.group.state, GroupState::Dead);

    let mut empty = Harness::new(GroupConfig::default());
    assert_eq!(empty.group.delete(0), Ok(()));
    assert_eq!(
        empty.group.delete(0).map_err(KafkaError::code),
        Err(error_codes::GROUP_ID_NOT_FOUND)
    );
    let _ = &mut empty;
}

#[test]
fn pending_member_ids_expire() {
    let mut h = Harness::new(GroupConfig::default());
    let t = h.join_with(request("", None, &["range"]));
    let id = h.take_join(t).unwrap().member_id;
    h.advance(i64::from(SESSION_MS));
    let t = h.join_with(request(&id, None, &["range"]));
    assert_eq!(
        h.take_join(t).map(|r| r.error_code()),
        Some(error_codes::UNKNOWN_MEMBER_ID)
    );
}

/// LeaveGroup's per-member results as the wire codes the tests compare.
fn leave_codes(
    (results, out): (Vec<Result<(), KafkaError>>, Vec<Output>),
) -> (Vec<i16>, Vec<Output>) {
    (results.iter().map(code_of).collect(), out)
}
