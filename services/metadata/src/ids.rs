//! Id allocation on top of compare-and-set: the counter `name` lives at `ids/NAME` as a decimal
//! string (readable with `etcdctl get`), holding the last id handed out. Allocation reads it and
//! writes it forward with [`Expect::Version`]/[`Expect::Absent`]; a lost race re-reads and tries
//! again, so two processes never receive the same id.

use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;

use crate::error::{MetadataError, Result};
use crate::store::{Expect, MetadataStore, validate_key};

/// Where the counter `name` lives.
pub fn counter_key(name: &str) -> String {
    format!("ids/{name}")
}

const MAX_ATTEMPTS: u32 = 1000;

pub(crate) async fn allocate<S: MetadataStore + ?Sized>(
    store: &S,
    name: &str,
    count: u64,
) -> Result<Range<u64>> {
    let key = counter_key(name);
    validate_key(&key)?;
    if count == 0 {
        return Err(MetadataError::Invalid("cannot allocate zero ids".into()));
    }
    for attempt in 0..MAX_ATTEMPTS {
        let (last, expect) = match store.get(&key).await? {
            None => (0, Expect::Absent),
            Some(kv) => (parse(&key, &kv.value)?, Expect::Version(kv.mod_revision)),
        };
        let end = last
            .checked_add(count)
            .ok_or_else(|| MetadataError::Invalid(format!("counter {name:?} is exhausted")))?;
        match store.put(&key, Bytes::from(end.to_string()), expect).await {
            Ok(_) => return Ok(last + 1..end + 1),
            Err(MetadataError::Conflict { .. }) => {
                // Someone else allocated first; back off a little so that a crowd spreads out.
                let jitter = fastrand::u64(0..=u64::from(attempt.min(20)));
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(MetadataError::Unavailable(format!(
        "counter {name:?} stayed contended for {MAX_ATTEMPTS} attempts"
    )))
}

fn parse(key: &str, value: &[u8]) -> Result<u64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| {
            MetadataError::Corrupt(format!(
                "counter {key:?} holds {:?}, not a number",
                String::from_utf8_lossy(&value[..value.len().min(64)])
            ))
        })
}
