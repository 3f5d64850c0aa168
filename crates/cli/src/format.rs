//! The `sluice consume --format` renderer.
//!
//! Placeholders (as in kcat, except `%T`, which is the topic here):
//! `%k` key, `%v` value, `%p` partition, `%o` offset, `%t` timestamp in
//! milliseconds (`-1` when the record has none), `%h` headers as
//! `name=value` separated by commas, `%T` topic, `%%` a percent sign.
//! Escapes: `\n`, `\t`, `\r`, `\\`. A null key, value or header value
//! renders as nothing. Keys and values are written as raw bytes.

/// One piece of a parsed format.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// Bytes copied unchanged.
    Literal(Vec<u8>),
    Key,
    Value,
    Partition,
    Offset,
    Timestamp,
    Headers,
    Topic,
}

/// A parsed `--format`, ready to render many records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    /// The format's pieces in order; adjacent literals are merged.
    pieces: Vec<Piece>,
}

/// What the renderer needs of a record, independent of the client library.
#[derive(Clone, Debug, Default)]
pub struct Record<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch, if the record carries a timestamp.
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

impl Format {
    /// Parses a format string; unknown placeholders and escapes are errors,
    /// so a typo does not silently print the wrong thing.
    pub fn parse(text: &str) -> Result<Format, String> {
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    let piece = match chars.next() {
                        Some('k') => Piece::Key,
                        Some('v') => Piece::Value,
                        Some('p') => Piece::Partition,
                        Some('o') => Piece::Offset,
                        Some('t') => Piece::Timestamp,
                        Some('h') => Piece::Headers,
                        Some('T') => Piece::Topic,
                        Some('%') => {
                            literal.push(b'%');
                            continue;
                        }
                        Some(other) => {
                            return Err(format!(
                                "unknown placeholder %{other} in format (known: %k %v %p %o %t %h %T %%)"
                            ))
                        }
                        None => return Err("format ends with a lone %".to_string()),
                    };
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(piece);
                }
                '\\' => {
                    let byte = match chars.next() {
                        Some('n') => b'\n',
                        Some('t') => b'\t',
                        Some('r') => b'\r',
                        Some('\\') => b'\\',
                        Some(other) => {
                            return Err(format!(
                                "unknown escape \\{other} in format (known: \\n \\t \\r \\\\)"
                            ))
                        }
                        None => return Err("format ends with a lone \\".to_string()),
                    };
                    literal.push(byte);
                }
                other => {
                    let mut buffer = [0u8; 4];
                    literal.extend_from_slice(other.encode_utf8(&mut buffer).as_bytes());
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Format { pieces })
    }

    /// Appends the rendering of `record` to `out`.
    pub fn render(&self, record: &Record<'_>, out: &mut Vec<u8>) {
        for piece in &self.pieces {
            match piece {
                Piece::Literal(bytes) => out.extend_from_slice(bytes),
                Piece::Key => out.extend_from_slice(record.key.unwrap_or_default()),
                Piece::Value => out.extend_from_slice(record.value.unwrap_or_default()),
                Piece::Partition => out.extend_from_slice(record.partition.to_string().as_bytes()),
                Piece::Offset => out.extend_from_slice(record.offset.to_string().as_bytes()),
                Piece::Timestamp => {
                    let millis = record.timestamp.unwrap_or(-1);
                    out.extend_from_slice(millis.to_string().as_bytes());
                }
                Piece::Headers => {
                    for (index, (name, value)) in record.headers.iter().enumerate() {
                        if index > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(name.as_bytes());
                        out.push(b'=');
                        out.extend_from_slice(value.unwrap_or_default());
                    }
                }
                Piece::Topic => out.extend_from_slice(record.topic.as_bytes()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record<'static> {
        Record {
            topic: "orders",
            partition: 2,
            offset: 41,
            timestamp: Some(1_700_000_000_000),
            key: Some(b"k1"),
            value: Some(b"hello"),
            headers: vec![("trace", Some(b"abc")), ("empty", None)],
        }
    }

    #[test]
    fn renders_placeholders_and_escapes() {
        let cases: &[(&str, &str)] = &[
            ("%v\\n", "hello\n"),
            ("%k:%v", "k1:hello"),
            ("%T/%p@%o", "orders/2@41"),
            ("%t", "1700000000000"),
            ("%h", "trace=abc,empty="),
            ("a\\tb\\r\\\\", "a\tb\r\\"),
            ("100%% %v", "100% hello"),
            ("", ""),
            ("plain ü text", "plain ü text"),
            ("%k%v%k", "k1hellok1"),
        ];
        for (format, expected) in cases {
            let parsed = Format::parse(format).unwrap();
            let mut out = Vec::new();
            parsed.render(&sample(), &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                *expected,
                "format {format:?}"
            );
        }
    }

    #[test]
    fn null_fields_and_missing_timestamp() {
        let record = Record {
            topic: "t",
            timestamp: None,
            ..Record::default()
        };
        let cases: &[(&str, &str)] = &[("[%k][%v]", "[][]"), ("%t", "-1"), ("[%h]", "[]")];
        for (format, expected) in cases {
            let mut out = Vec::new();
            Format::parse(format).unwrap().render(&record, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                *expected,
                "format {format:?}"
            );
        }
    }

    #[test]
    fn raw_bytes_pass_through() {
        let record = Record {
            value: Some(&[0xff, 0x00, 0x80]),
            ..Record::default()
        };
        let mut out = Vec::new();
        Format::parse("%v").unwrap().render(&record, &mut out);
        assert_eq!(out, vec![0xff, 0x00, 0x80]);
    }

    #[test]
    fn rejects_bad_formats() {
        let cases = ["%x", "%", "\\q", "abc\\", "%v%"];
        for format in cases {
            assert!(Format::parse(format).is_err(), "format {format:?}");
        }
    }
}
