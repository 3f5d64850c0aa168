//! Parsers for the bench options that clap cannot parse on its own: key
//! distributions, rates, durations and byte sizes. Pure functions, tested
//! with tables of inputs.

use std::time::Duration;

/// Which keys the produced records carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// No key: librdkafka's sticky partitioner spreads batches.
    None,
    /// A fresh random 8-byte key per record.
    Random,
    /// One of N fixed keys (`key-0` … `key-{N-1}`), picked at random, so
    /// records land on at most N partitions.
    Fixed(u32),
}

/// Parses `none`, `random` or `fixed:N` (N ≥ 1).
pub fn parse_keys(text: &str) -> Result<Keys, String> {
    match text {
        "none" => Ok(Keys::None),
        "random" => Ok(Keys::Random),
        _ => match text.strip_prefix("fixed:") {
            Some(count) => match count.parse::<u32>() {
                Ok(count) if count >= 1 => Ok(Keys::Fixed(count)),
                _ => Err(format!(
                    "fixed:N needs N to be a whole number ≥ 1, got {count:?}"
                )),
            },
            None => Err(format!("expected none, random or fixed:N, got {text:?}")),
        },
    }
}

/// Parses a rate in records per second: `50000`, `50k`, `1.5M`; > 0.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let (number, scale) = match text.char_indices().last() {
        Some((at, 'k' | 'K')) => (&text[..at], 1e3),
        Some((at, 'm' | 'M')) => (&text[..at], 1e6),
        _ => (text, 1.0),
    };
    match number.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate * scale),
        _ => Err(format!(
            "expected a positive rate in records/s such as 50000, 50k or 1.5M, got {text:?}"
        )),
    }
}

/// Parses a duration: `10s`, `500ms`, `2m`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit_seconds) = if let Some(number) = text.strip_suffix("ms") {
        (number, 1e-3)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, 1.0)
    } else if let Some(number) = text.strip_suffix('m') {
        (number, 60.0)
    } else if let Some(number) = text.strip_suffix('h') {
        (number, 3600.0)
    } else {
        (text, 1.0)
    };
    match number.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => {
            Ok(Duration::from_secs_f64(value * unit_seconds))
        }
        _ => Err(format!(
            "expected a positive duration such as 10s, 500ms or 2m, got {text:?}"
        )),
    }
}

/// Parses a byte size: `1024`, `100B`, `1KiB`, `4MiB`, `1k` (1000), `1M`.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let units: &[(&str, usize)] = &[
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
        ("k", 1_000),
        ("K", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("B", 1),
    ];
    let (number, scale) = units
        .iter()
        .find_map(|(suffix, scale)| text.strip_suffix(suffix).map(|n| (n, *scale)))
        .unwrap_or((text, 1));
    number
        .trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("expected a size such as 1024, 100B or 1KiB, got {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let cases: &[(&str, Option<Keys>)] = &[
            ("none", Some(Keys::None)),
            ("random", Some(Keys::Random)),
            ("fixed:1", Some(Keys::Fixed(1))),
            ("fixed:64", Some(Keys::Fixed(64))),
            ("fixed:0", None),
            ("fixed:", None),
            ("fixed:-3", None),
            ("fixed", None),
            ("Random", None),
            ("", None),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_keys(input).ok(), *expected, "input {input:?}");
        }
    }

    #[test]
    fn rates() {
        let cases: &[(&str, Option<f64>)] = &[
            ("50000", Some(50_000.0)),
            ("50k", Some(50_000.0)),
            ("50K", Some(50_000.0)),
            ("1.5M", Some(1_500_000.0)),
            ("0.5", Some(0.5)),
            ("0", None),
            ("-1", None),
            ("k", None),
            ("fast", None),
            ("inf", None),
            ("NaN", None),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_rate(input).ok(), *expected, "input {input:?}");
        }
    }

    #[test]
    fn durations() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("10s", Some(Duration::from_secs(10))),
            ("10", Some(Duration::from_secs(10))),
            ("500ms", Some(Duration::from_millis(500))),
            ("2m", Some(Duration::from_secs(120))),
            ("1h", Some(Duration::from_secs(3600))),
            ("1.5s", Some(Duration::from_millis(1500))),
            ("0s", None),
            ("s", None),
            ("ten", None),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_duration(input).ok(), *expected, "input {input:?}");
        }
    }

    #[test]
    fn sizes() {
        let cases: &[(&str, Option<usize>)] = &[
            ("1024", Some(1024)),
            ("100B", Some(100)),
            ("1KiB", Some(1024)),
            ("4MiB", Some(4 << 20)),
            ("1k", Some(1000)),
            ("2M", Some(2_000_000)),
            ("0", Some(0)),
            ("KiB", None),
            ("-1", None),
            ("1.5KiB", None),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_bytes(input).ok(), *expected, "input {input:?}");
        }
    }
}
