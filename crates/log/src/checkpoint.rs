//! Kafka's text checkpoint files, written atomically.
//!
//! Format: a version line (`0`), a count line, then `count` lines of
//! whitespace-separated fields. Used for the data-dir offset checkpoints
//! (`topic partition offset`) and the per-partition `leader-epoch-checkpoint`
//! (`epoch startOffset`).

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::io_error;
use crate::log_files::TEMPORARY_SUFFIX;
use crate::LogError;

/// The only version we write and accept.
pub const CHECKPOINT_VERSION: &str = "0";

/// Per-partition file holding the cleaner checkpoint (first dirty offset),
/// Kafka's checkpoint text format with one single-field entry.
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";

/// The stored cleaner checkpoint of the partition directory `dir`, `None`
/// when absent. Read at open, written after each cleaning pass.
pub(crate) fn read_cleaner_offset(dir: &Path) -> Result<Option<i64>, LogError> {
    let path = dir.join(CLEANER_OFFSET_CHECKPOINT);
    match read(&path, 1)? {
        Some(entries) => match entries.first() {
            Some(fields) => Ok(Some(parse_field(&path, &fields[0])?)),
            None => Ok(None),
        },
        None => Ok(None),
    }
}

/// Stores the cleaner checkpoint of the partition directory `dir`.
pub(crate) fn write_cleaner_offset(dir: &Path, offset: i64) -> Result<(), LogError> {
    let content = render(&[offset.to_string()]);
    write_atomically(&dir.join(CLEANER_OFFSET_CHECKPOINT), content.as_bytes())
}

/// Writes `content` to `path` via `path.tmp`: write, fsync, rename, fsync dir.
pub fn write_atomically(path: &Path, content: &[u8]) -> Result<(), LogError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(TEMPORARY_SUFFIX);
    let temporary = std::path::PathBuf::from(temporary);
    {
        let mut file = File::create(&temporary).map_err(|error| io_error(&temporary, error))?;
        file.write_all(content)
            .map_err(|error| io_error(&temporary, error))?;
        file.sync_all()
            .map_err(|error| io_error(&temporary, error))?;
    }
    std::fs::rename(&temporary, path).map_err(|error| io_error(path, error))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// fsyncs a directory so that created / renamed / removed entries are durable.
pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    let handle = File::open(dir).map_err(|error| io_error(dir, error))?;
    handle.sync_all().map_err(|error| io_error(dir, error))
}

/// Renders a checkpoint file from its lines.
pub fn render(lines: &[String]) -> String {
    let mut out = format!("{CHECKPOINT_VERSION}\n{}\n", lines.len());
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Parses a checkpoint file into its entry lines split in fields, each with
/// exactly `fields` fields. `Ok(None)` when the file does not exist.
pub fn read(path: &Path, fields: usize) -> Result<Option<Vec<Vec<String>>>, LogError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(path, error)),
    };
    let corrupt = |reason: String| LogError::Corrupt {
        path: path.to_path_buf(),
        position: 0,
        reason,
    };
    let mut lines = text.lines();
    let version = lines.next().unwrap_or("").trim();
    if version != CHECKPOINT_VERSION {
        return Err(corrupt(format!(
            "unsupported checkpoint version {version:?}"
        )));
    }
    let count: usize = lines
        .next()
        .unwrap_or("")
        .trim()
        .parse()
        .map_err(|_| corrupt("bad entry count line".to_string()))?;
    let mut entries = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let line = lines
            .next()
            .ok_or_else(|| corrupt(format!("expected {count} entries, found {}", entries.len())))?;
        let parts: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        if parts.len() != fields {
            return Err(corrupt(format!("malformed line {line:?}")));
        }
        entries.push(parts);
    }
    Ok(Some(entries))
}

/// Parses a field as a number, naming the file on failure.
pub fn parse_field<T: std::str::FromStr>(path: &Path, field: &str) -> Result<T, LogError> {
    field.parse().map_err(|_| LogError::Corrupt {
        path: path.to_path_buf(),
        position: 0,
        reason: format!("not a number: {field:?}"),
    })
}
