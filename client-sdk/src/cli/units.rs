//! Parsing and printing of the quantities the CLI takes and shows: byte sizes (`64MiB`, `1GB`,
//! `4096`), points in time (RFC 3339 or milliseconds since the Unix epoch) and durations
//! (`5s`, `1h 30m`, via `humantime`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses a byte size: a whole or decimal number with an optional unit, `B`, `K`/`KB` (10³),
/// `KiB` (2¹⁰), `M`/`MB`, `MiB`, `G`/`GB`, `GiB`, `T`/`TB`, `TiB` (case-insensitive).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    if number.is_empty() {
        return Err(format!("{s:?} is not a size (e.g. 4096, 64KiB, 1GB)"));
    }
    if let Ok(n) = number.parse::<u64>() {
        return n
            .checked_mul(scale)
            .ok_or_else(|| format!("size {s:?} is too large"));
    }
    let f: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 4096, 64KiB, 1GB)"))?;
    let bytes = f * scale as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("size {s:?} is too large"));
    }
    Ok(bytes.round() as u64)
}

/// Parses a human duration such as `500ms`, `5s`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration: {e}"))
}

/// Parses a point in time: RFC 3339 (`2024-05-01T12:00:00Z`, fractions allowed) or
/// milliseconds since the Unix epoch. Returns milliseconds since the Unix epoch.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return Ok(ms);
    }
    let time = humantime::parse_rfc3339_weak(t).map_err(|e| {
        format!("{s:?} is not a time (RFC 3339 like 2024-05-01T12:00:00Z, or milliseconds): {e}")
    })?;
    Ok(system_time_ms(time))
}

/// Milliseconds since the Unix epoch (negative before it).
pub fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// Formats milliseconds since the Unix epoch as RFC 3339 (UTC, milliseconds).
pub fn format_time(ms: i64) -> String {
    let t = if ms >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_millis(ms.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_millis(ms.unsigned_abs()))
    };
    match t {
        Some(t) => humantime::format_rfc3339_millis(t).to_string(),
        None => format!("{ms} ms"),
    }
}

/// Formats a byte count with a binary unit (`1.5 MiB`).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Formats milliseconds as a human duration (`1h`, `30m`, `1500ms`).
pub fn format_ms(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("1 gib"), Ok(1 << 30));
        assert_eq!(parse_bytes("64KiB"), Ok(64 << 10));
        assert_eq!(parse_bytes("2MB"), Ok(2_000_000));
        assert_eq!(parse_bytes("1.5KiB"), Ok(1536));
        assert_eq!(parse_bytes("10b"), Ok(10));
        for bad in ["", "GiB", "12 parsecs", "-1", "1.2.3MB", "99999999999TiB"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("-5"), Ok(-5));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_time("2023-11-14T22:13:20.5Z"), Ok(1_700_000_000_500));
        assert!(parse_time("yesterday").is_err());
        assert_eq!(format_time(1_700_000_000_500), "2023-11-14T22:13:20.500Z");
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn durations_and_formats() {
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(3 << 20), "3.0 MiB");
        assert_eq!(format_ms(3_600_000), "1h");
    }
}
