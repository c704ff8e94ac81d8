//! Where things live in a bucket. Every key is under the bucket's prefix:
//!
//! ```text
//! streams/NAMESPACE/NAME/dt=YYYY-MM-DD/FIRST-LAST.parquet   one object per segment (or run)
//! streams/NAMESPACE/NAME/_manifest/VERSION.json             the stream's manifest versions
//! streams/NAMESPACE/NAME/_staging/FIRST-LAST.NONCE.staged   a large object being uploaded
//! ```
//!
//! A staging object exists only while a large object's parts are uploaded (it is then copied
//! to its key with a conditional copy and deleted); one left by a crash is an orphan for the
//! scrubber. Its name does not end in `.parquet`, so globs over segment files skip it.
//!
//! `FIRST` and `LAST` are the first and last offsets the object holds, zero-padded to 20
//! digits so that keys sort by offset; `dt` is the UTC date of the object's first record
//! (Hive-style, so query engines prune by date). `VERSION` is zero-padded to 20 digits too, so
//! the newest manifest is the last key listed. Names starting with `_` are skipped by Hive-style
//! readers (Spark, DuckDB's `hive_partitioning`), so they see only segment files.

use dlog_api::stream::StreamName;

/// `streams/NAMESPACE/NAME`.
pub fn stream_dir(name: &StreamName) -> String {
    format!("streams/{}/{}", name.namespace(), name.name())
}

/// The key of an object holding offsets `first..=last`, whose first record has timestamp
/// `first_ts_ms`.
pub fn segment_key(name: &StreamName, first: u64, last: u64, first_ts_ms: i64) -> String {
    format!(
        "{}/dt={}/{first:020}-{last:020}.parquet",
        stream_dir(name),
        utc_date(first_ts_ms)
    )
}

/// Where a large object at `key` (`DIR/dt=…/FILE.parquet`) is staged during its upload:
/// `DIR/_staging/FILE.NONCE.staged` (FILE without `.parquet`).
pub fn staging_key(key: &str, nonce: u64) -> String {
    let (dir, file) = key.rsplit_once('/').unwrap_or(("", key));
    let dir = dir
        .rsplit_once('/')
        .filter(|(_, last)| last.starts_with("dt="))
        .map_or(dir, |(parent, _)| parent);
    let stem = file.strip_suffix(".parquet").unwrap_or(file);
    if dir.is_empty() {
        format!("{STAGING}/{stem}.{nonce:016x}.staged")
    } else {
        format!("{dir}/{STAGING}/{stem}.{nonce:016x}.staged")
    }
}

/// Whether `key` is a staging object.
pub fn is_staging(key: &str) -> bool {
    key.ends_with(".staged") && key.split('/').any(|c| c == STAGING)
}

const STAGING: &str = "_staging";

/// `[first, last + 1)` from a key ending in `FIRST-LAST.parquet` (or a staging key,
/// `FIRST-LAST.NONCE.staged`).
pub fn object_range(key: &str) -> Option<(u64, u64)> {
    let file = key.rsplit('/').next()?;
    let name = match file.strip_suffix(".parquet") {
        Some(n) => n,
        None => file.strip_suffix(".staged")?.split('.').next()?,
    };
    let (a, b) = name.split_once('-')?;
    Some((a.parse().ok()?, b.parse::<u64>().ok()?.checked_add(1)?))
}

/// `streams/NAMESPACE/NAME/_manifest`.
pub fn manifest_dir(name: &StreamName) -> String {
    format!("{}/_manifest", stream_dir(name))
}

/// The key of manifest version `version`.
pub fn manifest_key(name: &StreamName, version: u64) -> String {
    format!("{}/{version:020}.json", manifest_dir(name))
}

/// The version a manifest key names, if it is one.
pub fn manifest_version(key: &str) -> Option<u64> {
    let file = key.rsplit('/').next()?;
    let digits = file.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// `YYYY-MM-DD` of a Unix time in milliseconds (UTC; the proleptic Gregorian calendar).
pub fn utc_date(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_offset_and_name_their_range() {
        let s: StreamName = "ns/orders".parse().unwrap();
        assert_eq!(
            segment_key(&s, 0, 999, 1_764_115_200_000),
            "streams/ns/orders/dt=2025-11-26/00000000000000000000-00000000000000000999.parquet"
        );
        let a = segment_key(&s, 9, 99, 0);
        let b = segment_key(&s, 100, 200, 0);
        assert!(a < b);
        assert_eq!(
            manifest_key(&s, 7),
            "streams/ns/orders/_manifest/00000000000000000007.json"
        );
        assert_eq!(manifest_version(&manifest_key(&s, 7)), Some(7));
        assert_eq!(manifest_version("streams/ns/orders/_manifest/7.json"), None);
        assert_eq!(manifest_version("x/00000000000000000007.json.tmp"), None);
    }

    #[test]
    fn staging_keys() {
        let s: StreamName = "ns/orders".parse().unwrap();
        let k = segment_key(&s, 0, 999, 0);
        let st = staging_key(&k, 0xab);
        assert_eq!(
            st,
            "streams/ns/orders/_staging/00000000000000000000-00000000000000000999.00000000000000ab.staged"
        );
        assert!(is_staging(&st));
        assert!(!is_staging(&k));
        assert!(!st.ends_with(".parquet"));
        assert_eq!(
            staging_key("x.parquet", 1),
            "_staging/x.0000000000000001.staged"
        );
    }

    #[test]
    fn ranges_from_keys() {
        assert_eq!(
            object_range("s/x/dt=1970-01-01/00000000000000000010-00000000000000000019.parquet"),
            Some((10, 20))
        );
        assert_eq!(object_range("s/x/whatever.parquet"), None);
        assert_eq!(
            object_range(&staging_key(
                "s/x/dt=1970-01-01/00000000000000000010-00000000000000000019.parquet",
                7
            )),
            Some((10, 20))
        );
    }

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(-1), "1969-12-31");
        assert_eq!(utc_date(951_782_400_000), "2000-02-29");
        assert_eq!(utc_date(1_798_761_599_999), "2026-12-31");
        assert_eq!(utc_date(1_798_761_600_000), "2027-01-01");
    }
}
