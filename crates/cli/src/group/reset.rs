//! `sluice group reset-offsets`: compute each partition's new offset, print
//! the plan, and commit it (with --execute) as an admin does: generation -1,
//! no member id, accepted only while the group has no members.

use std::collections::{BTreeSet, HashMap};

use anyhow::{bail, Context as _};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer as _;
use rdkafka::{Offset, TopicPartitionList};

use super::coordinator::{
    check, code, committed_offsets, describe_group, group_coordinator, group_id, retrying,
};
use super::ResetArgs;
use crate::client::{blocking, fetch_metadata, ConnectionArgs, REQUEST_TIMEOUT};
use crate::table;

/// `TOPIC` or `TOPIC:P,P,…`.
fn parse_topic_spec(spec: &str) -> anyhow::Result<(String, Option<Vec<i32>>)> {
    let Some((topic, partitions)) = spec.rsplit_once(':') else {
        return Ok((spec.to_string(), None));
    };
    if topic.is_empty() {
        bail!("--topic {spec:?}: no topic name");
    }
    let partitions = partitions
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<i32>()
                .ok()
                .filter(|p| *p >= 0)
                .with_context(|| format!("--topic {spec:?}: {p:?} is not a partition number"))
        })
        .collect::<anyhow::Result<Vec<i32>>>()?;
    Ok((topic.to_string(), Some(partitions)))
}

/// Milliseconds since the Unix epoch for an RFC 3339 date-time
/// (`2025-01-31T12:00:00Z`, `…T12:00:00.250+01:00`).
fn parse_rfc3339_millis(text: &str) -> anyhow::Result<i64> {
    let error = || {
        anyhow::anyhow!(
            "--to-datetime {text:?}: expected RFC 3339, e.g. 2025-01-31T12:00:00Z or 2025-01-31T12:00:00.000+01:00"
        )
    };
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !text.is_ascii() {
        return Err(error());
    }
    let number = |range: std::ops::Range<usize>| -> anyhow::Result<i64> {
        let part = &text[range];
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error());
        }
        part.parse().map_err(|_| error())
    };
    let separators_ok = bytes[4] == b'-'
        && bytes[7] == b'-'
        && matches!(bytes[10], b'T' | b't' | b' ')
        && bytes[13] == b':'
        && bytes[16] == b':';
    if !separators_ok {
        return Err(error());
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let mut rest = &text[19..];
    let mut millis = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(error());
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse().map_err(|_| error())?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        zone if zone.len() == 6 && zone.as_bytes()[3] == b':' => {
            let sign = match zone.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(error()),
            };
            let hours: i64 = zone[1..3].parse().map_err(|_| error())?;
            let minutes: i64 = zone[4..6].parse().map_err(|_| error())?;
            if hours > 23 || minutes > 59 {
                return Err(error());
            }
            sign * (hours * 60 + minutes)
        }
        _ => return Err(error()),
    };
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap(year) => 29,
        2 => 28,
        _ => return Err(error()),
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return Err(error());
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let shifted_year = if month <= 2 { year - 1 } else { year };
    let era = shifted_year.div_euclid(400);
    let year_of_era = shifted_year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

/// One line of the reset plan.
struct PlannedReset {
    /// Partition index.
    partition: i32,
    /// The group's committed offset now, if any.
    current: Option<i64>,
    /// The offset to commit.
    new: i64,
}

pub(super) async fn reset_offsets(
    connection: &ConnectionArgs,
    args: &ResetArgs,
) -> anyhow::Result<()> {
    let group = args.group.as_str();
    let (topic, only) = parse_topic_spec(&args.topic)?;
    let timestamp = args
        .target
        .to_datetime
        .as_deref()
        .map(parse_rfc3339_millis)
        .transpose()?;

    // The partitions to reset.
    let client = connection.metadata_client()?;
    let metadata = fetch_metadata(&client, Some(&topic), &connection.brokers).await?;
    let Some(entry) = metadata.topics().iter().find(|t| t.name() == topic) else {
        bail!("topic {topic}: not in the metadata response");
    };
    if let Some(error) = entry.error() {
        bail!(
            "topic {topic}: {}",
            rdkafka::types::RDKafkaErrorCode::from(error)
        );
    }
    let existing: BTreeSet<i32> = entry.partitions().iter().map(|p| p.id()).collect();
    let partitions: Vec<i32> = match only {
        Some(only) => {
            if let Some(missing) = only.iter().find(|p| !existing.contains(p)) {
                bail!("topic {topic} has no partition {missing}");
            }
            let set: BTreeSet<i32> = only.into_iter().collect();
            set.into_iter().collect()
        }
        None => existing.into_iter().collect(),
    };

    // Refused while the group has members: they would overwrite the reset
    // with their next commit (Kafka's tool refuses too).
    let (described, committed) = retrying(|| async {
        let mut session = group_coordinator(connection, group).await?;
        let described = describe_group(&mut session, group).await?;
        let topics = [(topic.clone(), partitions.clone())];
        let committed = committed_offsets(&mut session, group, Some(&topics)).await?;
        anyhow::Ok((described, committed))
    })
    .await?;
    if !described.members.is_empty() || !matches!(described.group_state.as_str(), "Empty" | "Dead")
    {
        bail!(
            "group {group} is {} with {} member(s); stop its consumers before resetting its offsets",
            described.group_state.as_str(),
            described.members.len()
        );
    }

    let at_time = match timestamp {
        Some(timestamp) => {
            let mut list = TopicPartitionList::new();
            for partition in &partitions {
                list.add_partition_offset(&topic, *partition, Offset::Offset(timestamp))
                    .context("building the offsets-for-times request")?;
            }
            let found = blocking(|| client.offsets_for_times(list, REQUEST_TIMEOUT))
                .context("looking up offsets for --to-datetime")?;
            found
                .elements()
                .iter()
                .map(|e| (e.partition(), e.offset()))
                .collect::<HashMap<i32, Offset>>()
        }
        None => HashMap::new(),
    };

    let mut plan = Vec::with_capacity(partitions.len());
    for partition in partitions {
        let (low, high) = blocking(|| client.fetch_watermarks(&topic, partition, REQUEST_TIMEOUT))
            .with_context(|| format!("reading the watermarks of {topic}/{partition}"))?;
        let current = committed.get(&(topic.clone(), partition)).copied();
        let target = &args.target;
        let wanted = if target.to_earliest {
            low
        } else if target.to_latest {
            high
        } else if let Some(offset) = target.to_offset {
            offset
        } else if let Some(shift) = target.shift_by {
            let Some(current) = current else {
                bail!("cannot shift {topic}/{partition}: group {group} has no committed offset for it");
            };
            current.saturating_add(shift)
        } else {
            // --to-datetime: the first record at or after it, else the end.
            match at_time.get(&partition) {
                Some(Offset::Offset(offset)) if *offset >= 0 => *offset,
                _ => high,
            }
        };
        plan.push(PlannedReset {
            partition,
            current,
            new: wanted.clamp(low, high),
        });
    }

    if args.execute {
        retrying(|| commit_plan(connection, group, &topic, &plan)).await?;
    }
    let rows: Vec<Vec<String>> = plan
        .iter()
        .map(|p| {
            vec![
                topic.clone(),
                p.partition.to_string(),
                p.current.map_or_else(|| "-".to_string(), |c| c.to_string()),
                p.new.to_string(),
            ]
        })
        .collect();
    table::emit(&table::render(
        &["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
        &rows,
    ))?;
    if !args.execute {
        eprintln!("dry run: nothing committed; add --execute to commit these offsets");
    }
    Ok(())
}

/// OffsetCommit of the plan as an admin would: generation -1, no member id,
/// which Kafka accepts from a group without members.
async fn commit_plan(
    connection: &ConnectionArgs,
    group: &str,
    topic: &str,
    plan: &[PlannedReset],
) -> anyhow::Result<()> {
    let mut session = group_coordinator(connection, group).await?;
    // v9 is for KIP-848 consumer groups' member epochs; v8 is the classic form.
    let version = session.version::<OffsetCommitRequest>(8)?;
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::default())
        .with_retention_time_ms(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                plan.iter()
                    .map(|p| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(p.partition)
                            .with_committed_offset(p.new)
                            .with_committed_leader_epoch(-1)
                            .with_committed_metadata(Some(StrBytes::default()))
                    })
                    .collect(),
            )]);
    let response = session.send(version, &request).await?;
    for topic_response in &response.topics {
        for partition in &topic_response.partitions {
            let what = || {
                format!(
                    "committing offsets of group {group} for {}/{}",
                    topic_response.name.0, partition.partition_index
                )
            };
            match partition.error_code {
                code::UNKNOWN_MEMBER_ID | code::REBALANCE_IN_PROGRESS => bail!(
                    "{}: group {group} gained members meanwhile; stop its consumers and retry",
                    what()
                ),
                code::UNKNOWN_TOPIC_OR_PARTITION => {
                    bail!("{}: no such partition", what())
                }
                other => check(other, what)?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_specs() {
        type Parsed<'a> = Option<(&'a str, Option<Vec<i32>>)>;
        let cases: &[(&str, Parsed)] = &[
            ("orders", Some(("orders", None))),
            ("orders:0,2", Some(("orders", Some(vec![0, 2])))),
            ("orders:1", Some(("orders", Some(vec![1])))),
            ("orders:", None),
            ("orders:x", None),
            ("orders:-1", None),
            (":1", None),
        ];
        for (spec, expected) in cases {
            let got = parse_topic_spec(spec).ok();
            let expected = expected.as_ref().map(|(t, p)| (t.to_string(), p.clone()));
            assert_eq!(got, expected, "spec {spec:?}");
        }
    }

    #[test]
    fn datetimes() {
        let cases: &[(&str, Option<i64>)] = &[
            ("1970-01-01T00:00:00Z", Some(0)),
            ("1970-01-01T00:00:01.5Z", Some(1500)),
            ("2000-03-01T00:00:00Z", Some(951_868_800_000)),
            ("2024-02-29T12:34:56.789Z", Some(1_709_210_096_789)),
            ("2024-02-29T13:34:56.789+01:00", Some(1_709_210_096_789)),
            ("2024-02-29T11:04:56.789-01:30", Some(1_709_210_096_789)),
            ("1969-12-31T23:59:59Z", Some(-1000)),
            ("2023-02-29T00:00:00Z", None),
            ("2024-13-01T00:00:00Z", None),
            ("2024-01-01T00:00:00", None),
            ("2024-01-01", None),
            ("yesterday", None),
            ("2024-01-01T00:00:00.Z", None),
            ("2024-01-01T00:00:00+1:00", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_rfc3339_millis(text).ok(), *expected, "{text}");
        }
    }
}
