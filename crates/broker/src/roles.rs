//! Kafka's `process.roles`: what a node of a cluster runs. `broker,controller`
//! (combined: a voter of the metadata quorum that also serves clients),
//! `broker` (an observer of the quorum that serves clients) or `controller`
//! (a voter that serves no clients). Resolved once at start from the setting,
//! the node id and `controller.quorum.voters`, with Kafka's validation
//! (KafkaConfig's checks of `process.roles` against the voters).

use std::fmt;

/// The roles this node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessRoles {
    /// `broker,controller`.
    Combined,
    /// `broker`: serves clients, follows the metadata log, never votes.
    Broker,
    /// `controller`: votes, serves no clients and hosts no partitions.
    Controller,
}

impl ProcessRoles {
    /// Resolves the roles from the `process.roles` setting (`None` or empty
    /// when not set), this node's id and the configured voters (empty: a
    /// single node that is its own quorum).
    ///
    /// Unset, a node listed among the voters (or a node alone) is combined,
    /// and a node not listed is a broker, which is what its voters list
    /// implies. Set, the value must agree with the voters as Kafka requires:
    /// a node with the controller role is one of them, a node that is only a
    /// broker is not.
    pub fn resolve(
        setting: Option<&str>,
        node_id: i32,
        voters: &[(i32, String)],
    ) -> Result<ProcessRoles, String> {
        let listed = voters.iter().any(|(id, _)| *id == node_id);
        let voter_ids: Vec<i32> = voters.iter().map(|(id, _)| *id).collect();
        let setting = setting.map(str::trim).filter(|text| !text.is_empty());
        let Some(text) = setting else {
            return Ok(match voters.is_empty() || listed {
                true => ProcessRoles::Combined,
                false => ProcessRoles::Broker,
            });
        };
        let (mut broker, mut controller) = (false, false);
        // Empty entries are dropped, as Kafka's list type parses `broker,`.
        for role in text
            .split(',')
            .map(str::trim)
            .filter(|role| !role.is_empty())
        {
            let seen = match role {
                "broker" => std::mem::replace(&mut broker, true),
                "controller" => std::mem::replace(&mut controller, true),
                other => {
                    return Err(format!(
                        "process.roles: unknown process role {other:?} (only 'broker' and \
                         'controller' are allowed roles)"
                    ))
                }
            };
            if seen {
                return Err(format!(
                    "process.roles: duplicate role names found in {text:?}"
                ));
            }
        }
        let roles = match (broker, controller) {
            (true, true) => ProcessRoles::Combined,
            (true, false) => ProcessRoles::Broker,
            (false, true) => ProcessRoles::Controller,
            // Only commas: as if unset.
            (false, false) => return ProcessRoles::resolve(None, node_id, voters),
        };
        if voters.is_empty() {
            return match roles {
                ProcessRoles::Combined => Ok(roles),
                _ => Err(format!(
                    "process.roles={roles} needs controller.quorum.voters: a node alone is its own \
                     quorum and must run both roles (broker,controller)"
                )),
            };
        }
        match (roles, listed) {
            (ProcessRoles::Broker, true) => Err(format!(
                "if process.roles contains just the 'broker' role, the node id {node_id} must not \
                 be included in the set of voters controller.quorum.voters={voter_ids:?}"
            )),
            (ProcessRoles::Combined | ProcessRoles::Controller, false) => Err(format!(
                "if process.roles contains the 'controller' role, the node id {node_id} must be \
                 included in the set of voters controller.quorum.voters={voter_ids:?}"
            )),
            _ => Ok(roles),
        }
    }

    /// Whether this node serves clients (registers as a broker, hosts
    /// partitions).
    pub fn is_broker(self) -> bool {
        matches!(self, ProcessRoles::Combined | ProcessRoles::Broker)
    }

    /// Whether this node is a voter of the metadata quorum.
    pub fn is_controller(self) -> bool {
        matches!(self, ProcessRoles::Combined | ProcessRoles::Controller)
    }
}

impl fmt::Display for ProcessRoles {
    /// The value as Kafka writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProcessRoles::Combined => "broker,controller",
            ProcessRoles::Broker => "broker",
            ProcessRoles::Controller => "controller",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ProcessRoles::{self, Broker, Combined, Controller};

    fn voters(ids: &[i32]) -> Vec<(i32, String)> {
        ids.iter()
            .map(|id| (*id, format!("127.0.0.1:{}", 9000 + id)))
            .collect()
    }

    /// (setting, node id, voters, expected roles or a fragment of the error)
    type Case<'a> = (
        Option<&'a str>,
        i32,
        &'a [i32],
        Result<ProcessRoles, &'a str>,
    );

    #[test]
    fn resolution_and_validation() {
        let cases: &[Case] = &[
            (None, 1, &[], Ok(Combined)),
            (Some(""), 1, &[], Ok(Combined)),
            (None, 1, &[1, 2, 3], Ok(Combined)),
            (None, 4, &[1, 2, 3], Ok(Broker)),
            (Some("broker,controller"), 1, &[], Ok(Combined)),
            (Some(" controller , broker "), 2, &[1, 2, 3], Ok(Combined)),
            (Some("broker"), 4, &[1, 2, 3], Ok(Broker)),
            (Some("controller"), 3, &[1, 2, 3], Ok(Controller)),
            (Some("controller"), 1, &[1], Ok(Controller)),
            (Some("broker"), 2, &[1], Ok(Broker)),
            (
                Some("broker"),
                1,
                &[],
                Err("needs controller.quorum.voters"),
            ),
            (
                Some("controller"),
                1,
                &[],
                Err("needs controller.quorum.voters"),
            ),
            (Some("broker"), 2, &[1, 2, 3], Err("must not be included")),
            (Some("controller"), 4, &[1, 2, 3], Err("must be included")),
            (
                Some("broker,controller"),
                4,
                &[1, 2, 3],
                Err("must be included"),
            ),
            (Some("broker,broker"), 4, &[1, 2, 3], Err("duplicate role")),
            (
                Some("brokers"),
                4,
                &[1, 2, 3],
                Err("unknown process role \"brokers\""),
            ),
            (Some("broker,"), 4, &[1, 2, 3], Ok(Broker)),
            (Some(","), 1, &[], Ok(Combined)),
        ];
        for (setting, node_id, ids, expected) in cases {
            let got = ProcessRoles::resolve(*setting, *node_id, &voters(ids));
            match (expected, &got) {
                (Ok(want), Ok(got)) => assert_eq!(want, got, "{setting:?} node {node_id} {ids:?}"),
                (Err(fragment), Err(message)) => assert!(
                    message.contains(fragment),
                    "{setting:?} node {node_id} {ids:?}: {message:?} lacks {fragment:?}"
                ),
                _ => {
                    panic!("{setting:?} node {node_id} {ids:?}: expected {expected:?}, got {got:?}")
                }
            }
        }
    }

    #[test]
    fn display_is_kafkas_spelling() {
        assert_eq!(Combined.to_string(), "broker,controller");
        assert_eq!(Broker.to_string(), "broker");
        assert_eq!(Controller.to_string(), "controller");
        assert!(Combined.is_broker() && Combined.is_controller());
        assert!(Broker.is_broker() && !Broker.is_controller());
        assert!(!Controller.is_broker() && Controller.is_controller());
    }
}
