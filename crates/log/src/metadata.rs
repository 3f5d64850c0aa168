//! `partition.metadata`: the topic id of the partition directory.
//!
//! Format (Kafka's layout, with the id as a hyphenated UUID string instead of
//! Kafka's base64):
//! ```text
//! version: 0
//! topic_id: 6ba7b810-9dad-11d1-80b4-00c04fd430c8
//! ```
//! Reading also accepts the id in simple (32 hex digit) form.

use std::path::Path;

use crate::checkpoint;
use crate::error::io_error;
use crate::LogError;

/// File name inside the partition directory.
pub const PARTITION_METADATA: &str = "partition.metadata";

/// Returns the topic id stored in `dir`, writing `topic_id` first when the
/// file does not exist.
pub fn read_or_create(dir: &Path, topic_id: uuid::Uuid) -> Result<uuid::Uuid, LogError> {
    let path = dir.join(PARTITION_METADATA);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text).ok_or_else(|| LogError::Corrupt {
            path: path.clone(),
            position: 0,
            reason: "malformed partition.metadata".to_string(),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let text = format!("version: 0\ntopic_id: {}\n", topic_id.hyphenated());
            checkpoint::write_atomically(&path, text.as_bytes())?;
            Ok(topic_id)
        }
        Err(error) => Err(io_error(&path, error)),
    }
}

/// The topic id stored in `dir`, or `None` when the file is missing or
/// malformed.
pub fn read(dir: &Path) -> Option<uuid::Uuid> {
    std::fs::read_to_string(dir.join(PARTITION_METADATA))
        .ok()
        .and_then(|text| parse(&text))
}

fn parse(text: &str) -> Option<uuid::Uuid> {
    let mut version_ok = false;
    let mut topic_id = None;
    for line in text.lines() {
        let (key, value) = line.split_once(':')?;
        match key.trim() {
            "version" => version_ok = value.trim() == "0",
            "topic_id" => topic_id = uuid::Uuid::parse_str(value.trim()).ok(),
            _ => {}
        }
    }
    if version_ok {
        topic_id
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let id = uuid::Uuid::from_u128(0x1234);
        let cases = [
            (
                format!("version: 0\ntopic_id: {}\n", id.hyphenated()),
                Some(id),
            ),
            (format!("version: 0\ntopic_id: {}\n", id.simple()), Some(id)),
            (format!("version: 1\ntopic_id: {id}\n"), None),
            ("version: 0\n".to_string(), None),
            ("garbage".to_string(), None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(&text), expected, "{text:?}");
        }
    }
}
