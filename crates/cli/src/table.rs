//! Plain-text tables for command output: left-aligned columns separated by
//! two spaces, header in capitals (as `rpk` prints them).

use std::fmt::Write as _;

/// Renders `headers` and `rows` as aligned columns; no trailing spaces.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (index, cell) in row.iter().enumerate().take(columns) {
            widths[index] = widths[index].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (index, cell) in row.iter().enumerate().take(columns) {
            if index + 1 == columns {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[index]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Writes a command's output to stdout. A closed pipe (`sluice … | head`)
/// is not an error: the reader has what it wanted.
pub fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(error).context("writing to stdout"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let rows = vec![
            vec!["orders".to_string(), "12".to_string()],
            vec!["a".to_string(), "1".to_string()],
        ];
        assert_eq!(
            render(&["NAME", "PARTITIONS"], &rows),
            "NAME    PARTITIONS\norders  12\na       1\n"
        );
        assert_eq!(render(&["NAME"], &[]), "NAME\n");
    }
}
