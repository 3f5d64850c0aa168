//! Small durable files of `<data-dir>/meta/`: node id, cluster id, and the
//! helper that writes a whole file atomically (temp + fsync + rename + fsync dir).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use crate::MetaError;

/// File holding this node's `node.id` (decimal).
pub(crate) const NODE_ID_FILE: &str = "node.id";
/// File holding the cluster id (22 URL-safe base64 characters).
pub(crate) const CLUSTER_ID_FILE: &str = "cluster.id";

/// Replaces `dir/name` with `bytes` so that a crash leaves either the old or the
/// new content, never a mix.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let temp = dir.join(format!("{name}.tmp"));
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&temp, dir.join(name))?;
    sync_dir(dir)
}

/// Makes a directory entry change (create, rename) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads `dir/name`, or `None` if it does not exist.
pub(crate) fn read_optional(dir: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    match fs::read(dir.join(name)) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Persists the node id on first start; fails if a different one is stored.
pub(crate) fn check_or_store_node_id(dir: &Path, node_id: i32) -> Result<(), MetaError> {
    match read_optional(dir, NODE_ID_FILE)? {
        Some(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let found: i32 = text.trim().parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: not a node id: {:?}",
                        dir.join(NODE_ID_FILE).display(),
                        text
                    ),
                )
            })?;
            if found != node_id {
                return Err(MetaError::NodeIdMismatch {
                    dir: dir.display().to_string(),
                    found,
                    configured: node_id,
                });
            }
            Ok(())
        }
        None => Ok(write_atomically(
            dir,
            NODE_ID_FILE,
            format!("{node_id}\n").as_bytes(),
        )?),
    }
}

/// The cluster id stored in `dir`, or `None` before the first start.
pub(crate) fn stored_cluster_id(dir: &Path) -> Result<Option<String>, MetaError> {
    Ok(read_optional(dir, CLUSTER_ID_FILE)?
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string()))
}

/// Returns the stored cluster id, generating and persisting one on first start.
pub(crate) fn load_or_create_cluster_id(dir: &Path) -> Result<String, MetaError> {
    if let Some(bytes) = read_optional(dir, CLUSTER_ID_FILE)? {
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        if text.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: empty cluster id", dir.join(CLUSTER_ID_FILE).display()),
            )
            .into());
        }
        return Ok(text);
    }
    let cluster_id = new_cluster_id();
    write_atomically(dir, CLUSTER_ID_FILE, format!("{cluster_id}\n").as_bytes())?;
    tracing::info!(cluster_id = %cluster_id, "generated a new cluster id");
    Ok(cluster_id)
}

/// A random cluster id as Kafka makes them: a v4 UUID in unpadded URL-safe
/// base64 (22 characters).
pub(crate) fn new_cluster_id() -> String {
    base64_url_unpadded(uuid::Uuid::new_v4().as_bytes())
}

fn base64_url_unpadded(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let symbols = chunk.len() + 1;
        for i in 0..symbols {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_vectors() {
        let cases: [(&[u8], &str); 5] = [
            (b"", ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (&[0xfb, 0xff, 0xfe], "-__-"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64_url_unpadded(input), expected);
        }
    }

    #[test]
    fn cluster_id_is_22_url_safe_characters() {
        let id = new_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
