//! Re-replication (auto-recovery): bring every closed ledger back to Qw copies after a bookie
//! is lost.
//!
//! A bookie is **lost** when it has been unregistered for longer than a grace period (it died
//! and did not come back; a restart within the grace period costs nothing), or when it is
//! registered as `decommissioning`. The first time an auditor sees a bookie missing it records
//! `audit/missing/<id>` = that time, so that every auditor measures the grace from the same
//! moment; the record goes when the bookie is back.
//!
//! For each closed ledger with a fragment on a lost bookie, one worker claims the ledger
//! (`rereplication/claims/<ledger>`, create-if-absent under the worker's lease: safe to run on
//! several nodes at once, and a crashed worker's claim expires), then for each such fragment:
//! picks a replacement outside the fragment's ensemble, copies every entry of the fragment
//! whose write set includes the lost bookie from another replica (checksum verified) to the
//! replacement with a recovery add at the ledger's epoch, and only then swaps the bookie in that
//! fragment with a compare-and-set on the metadata. A crash midway leaves the metadata as it
//! was; the next round copies again (adds of the same bytes are idempotent).
//!
//! Open ledgers are not touched: their writer replaces failed bookies itself, and once closed
//! (by the writer or a recovery) they are re-replicated like any other.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use bytes::Bytes;
use dlog_api::wire::bookie::AddEntry;
use dlog_api::{BookieId, Entry, EntryId, LedgerId};
use dlog_metadata::{Expect, LeaseKeeper, MetadataError, MetadataStore};
use tracing::{info, warn};

use crate::client::{LedgerClient, LedgerError, now_ms};
use crate::metadata::{
    LEDGERS_PREFIX, LedgerMetadata, LedgerState, ledger_key, write_set_positions,
};
use crate::placement;
use crate::registry::{RegisteredState, list_bookies};

pub const MISSING_PREFIX: &str = "audit/missing/";
pub const CLAIMS_PREFIX: &str = "rereplication/claims/";

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundReport {
    pub ledgers_checked: u64,
    pub lost_bookies: Vec<BookieId>,
    /// Fragments moved off a lost bookie.
    pub fragments_rereplicated: u64,
    pub entries_copied: u64,
    /// Ledgers another worker had claimed.
    pub skipped_claimed: u64,
    /// Ledgers that could not be fixed this round (reason logged).
    pub failed: u64,
}

/// Runs one audit and re-replication round.
pub async fn run_round(client: &LedgerClient, grace: Duration) -> Result<RoundReport, LedgerError> {
    let store = client.store().clone();
    let mut report = RoundReport::default();
    let lost = lost_bookies(&*store, grace).await?;
    report.lost_bookies = lost.iter().cloned().collect();
    let listing = store.list(LEDGERS_PREFIX).await?;
    let mut work = Vec::new();
    for kv in &listing.kvs {
        report.ledgers_checked += 1;
        let meta = match LedgerMetadata::decode(&kv.value) {
            Ok(m) => m,
            Err(e) => {
                warn!(key = %kv.key, error = %e, "unreadable ledger metadata; skipped");
                continue;
            }
        };
        if meta.state == LedgerState::Closed
            && meta
                .fragments
                .iter()
                .any(|f| f.ensemble.iter().any(|b| lost.contains(b)))
        {
            work.push(meta.id);
        }
    }
    if work.is_empty() {
        return Ok(report);
    }
    let keeper = LeaseKeeper::start(store.clone(), Duration::from_secs(30)).await?;
    for id in work {
        let claim = format!("{CLAIMS_PREFIX}{:020}", id.0);
        match store
            .put_leased(
                &claim,
                Bytes::from(now_ms().to_string()),
                Expect::Absent,
                keeper.id(),
            )
            .await
        {
            Ok(_) => {}
            Err(MetadataError::Conflict { .. }) => {
                report.skipped_claimed += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        match rereplicate_ledger(client, id, &lost).await {
            Ok((fragments, entries)) => {
                report.fragments_rereplicated += fragments;
                report.entries_copied += entries;
            }
            Err(e) => {
                warn!(ledger = %id, error = %e, "re-replication failed; retried next round");
                report.failed += 1;
            }
        }
        let _ = store.delete(&claim, Expect::Any).await;
    }
    let _ = keeper.revoke().await;
    Ok(report)
}

/// Bookies lost for good: unregistered for longer than `grace`, or decommissioning.
async fn lost_bookies(
    store: &dyn MetadataStore,
    grace: Duration,
) -> Result<BTreeSet<BookieId>, LedgerError> {
    let registered = list_bookies(store)
        .await
        .map_err(|e| LedgerError::Metadata(MetadataError::Unavailable(e.to_string())))?;
    let live: HashSet<&BookieId> = registered.iter().map(|r| &r.id).collect();
    let mut lost: BTreeSet<BookieId> = registered
        .iter()
        .filter(|r| r.state == RegisteredState::Decommissioning)
        .map(|r| r.id.clone())
        .collect();
    // Every bookie any ledger names.
    let mut named = BTreeSet::new();
    for kv in store.list(LEDGERS_PREFIX).await?.kvs {
        if let Ok(m) = LedgerMetadata::decode(&kv.value) {
            named.extend(m.all_bookies());
        }
    }
    let now = now_ms();
    for b in named {
        let key = format!("{MISSING_PREFIX}{b}");
        if live.contains(&b) {
            store.delete(&key, Expect::Any).await?;
            continue;
        }
        let since = match store.get(&key).await? {
            Some(kv) => std::str::from_utf8(&kv.value)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(now),
            None => {
                match store
                    .put(&key, Bytes::from(now.to_string()), Expect::Absent)
                    .await
                {
                    Ok(_) | Err(MetadataError::Conflict { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                now
            }
        };
        if now.saturating_sub(since) >= grace.as_millis() as i64 {
            lost.insert(b);
        }
    }
    Ok(lost)
}

/// Moves every fragment of ledger `id` off the `lost` bookies; returns (fragments, entries).
async fn rereplicate_ledger(
    client: &LedgerClient,
    id: LedgerId,
    lost: &BTreeSet<BookieId>,
) -> Result<(u64, u64), LedgerError> {
    let (mut fragments, mut entries) = (0, 0);
    loop {
        let (meta, version) = client.metadata(id).await?;
        let Some((fi, old)) = meta.fragments.iter().enumerate().find_map(|(i, f)| {
            f.ensemble
                .iter()
                .find(|b| lost.contains(*b))
                .map(|b| (i, b.clone()))
        }) else {
            return Ok((fragments, entries));
        };
        let frag = &meta.fragments[fi];
        let regs = list_bookies(&**client.store())
            .await
            .map_err(|e| LedgerError::Metadata(MetadataError::Unavailable(e.to_string())))?;
        let exclude: HashSet<BookieId> = frag
            .ensemble
            .iter()
            .cloned()
            .chain(lost.iter().cloned())
            .collect();
        let keep: Vec<BookieId> = frag
            .ensemble
            .iter()
            .filter(|b| **b != old)
            .cloned()
            .collect();
        let new = {
            let mut rng = client.rng().lock();
            placement::choose(&regs, 1, &keep, &exclude, &mut rng)?.remove(0)
        };
        let copied = copy_fragment(client, &meta, fi, &old, &new).await?;
        let next = meta.with_fragment_bookie(fi, &old, &new)?;
        match client
            .store()
            .put(&ledger_key(id), next.encode(), Expect::Version(version))
            .await
        {
            Ok(_) => {
                info!(ledger = %id, fragment = fi, from = %old, to = %new, entries = copied, "fragment re-replicated");
                fragments += 1;
                entries += copied;
            }
            // The metadata moved (another worker, a delete): look again.
            Err(MetadataError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Copies to `new` every entry of fragment `fi` that `old` was meant to hold.
async fn copy_fragment(
    client: &LedgerClient,
    meta: &LedgerMetadata,
    fi: usize,
    old: &BookieId,
    new: &BookieId,
) -> Result<u64, LedgerError> {
    let Some((first, last)) = meta.fragment_entries(fi) else {
        return Ok(0);
    };
    let ensemble = &meta.fragments[fi].ensemble;
    let pos = ensemble
        .iter()
        .position(|b| b == old)
        .expect("old is in the fragment");
    let target = client.pool().get(new).await?;
    let max = client.options().max_payload + 64;
    let mut copied = 0;
    for e in first.0..=last.0 {
        let entry = EntryId(e);
        let positions: Vec<usize> = write_set_positions(meta.quorum, entry).collect();
        if !positions.contains(&pos) {
            continue;
        }
        let mut data = None;
        let mut why = Vec::new();
        for p in positions.into_iter().filter(|p| *p != pos) {
            let from = &ensemble[p];
            let r = match client.pool().get(from).await {
                Ok(c) => c.read(meta.id, entry, None).await,
                Err(e) => Err(e),
            };
            match r {
                Ok(ok) => match Entry::decode(ok.data.clone(), max) {
                    Ok(d) if (d.ledger, d.entry) == (meta.id, entry) => {
                        data = Some(ok.data);
                        break;
                    }
                    Ok(_) => why.push(format!("{from}: wrong entry")),
                    Err(e) => why.push(format!("{from}: {e}")),
                },
                Err(e) => why.push(format!("{from}: {e}")),
            }
        }
        let Some(data) = data else {
            return Err(LedgerError::Unreadable {
                ledger: meta.id,
                entry,
                why: why.join("; "),
            });
        };
        target
            .add(AddEntry {
                ledger: meta.id,
                entry,
                epoch: meta.epoch,
                lac: meta.last_entry,
                recovery: true,
                data,
            })
            .await?;
        copied += 1;
    }
    Ok(copied)
}

/// Runs rounds every `interval` until `stop`.
pub async fn run_forever(
    client: LedgerClient,
    grace: Duration,
    interval: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        // A stop ends a round in progress too (a round can wait long on an unreachable bookie
        // or store). That is safe: a fragment's copy only counts once the ledger's metadata
        // names it, and each metadata update is one compare-and-set.
        let round = tokio::select! {
            _ = stop.cancelled() => return,
            r = run_round(&client, grace) => r,
        };
        match round {
            Ok(r) if r.fragments_rereplicated > 0 || r.failed > 0 => {
                info!(?r, "re-replication round");
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "re-replication round failed"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
