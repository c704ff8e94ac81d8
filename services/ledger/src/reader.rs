//! [`LedgerReader`]: reads a ledger's entries from any replica, never past its end.
//!
//! - A closed ledger ends at its `last_entry`. An open one ends at the LAC: the highest LAC any
//!   bookie reports is a true LAC (writers only ever tell bookies acknowledged positions), and
//!   [`LedgerReader::wait_lac`] long-polls for it to move, for tail readers.
//! - A read asks the first replica of the entry's write set and, if it has not answered after
//!   `speculative_read_delay`, the next as well (and so on); a refusal moves on at once. The
//!   first verified answer wins. Every entry is checked against its CRC and ids.

use std::sync::Arc;
use std::time::Duration;

use dlog_api::{Entry, EntryId, ErrorCode};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::client::{Inner, LedgerError};
use crate::metadata::{LedgerMetadata, LedgerState};

/// How often a long-poll looks again at a ledger no bookie knows yet (no entry written).
const NEW_LEDGER_POLL: Duration = Duration::from_millis(5);

#[derive(Debug)]
pub struct LedgerReader {
    inner: Arc<Inner>,
    meta: LedgerMetadata,
    /// The highest LAC seen (for an open ledger).
    lac: Option<EntryId>,
}

impl LedgerReader {
    pub(crate) fn new(inner: Arc<Inner>, meta: LedgerMetadata) -> LedgerReader {
        LedgerReader {
            inner,
            meta,
            lac: None,
        }
    }

    pub fn metadata(&self) -> &LedgerMetadata {
        &self.meta
    }

    /// The last entry readers may read now: the end of a closed ledger, or the highest LAC seen.
    pub fn readable_end(&self) -> Option<EntryId> {
        match self.meta.state {
            LedgerState::Closed => self.meta.last_entry,
            _ => self.lac,
        }
    }

    /// Reads `entry`, which must be at or before [`LedgerReader::readable_end`].
    pub async fn read(&mut self, entry: EntryId) -> Result<Entry, LedgerError> {
        let end = self.readable_end();
        if end.is_none_or(|e| entry > e) {
            return Err(LedgerError::PastEnd {
                ledger: self.meta.id,
                entry,
                end,
            });
        }
        let (e, lac) = fetch(&self.inner, &self.meta, entry).await?;
        if lac > self.lac {
            self.lac = lac;
        }
        Ok(e)
    }

    /// Reads entries `from..=to` (at or before [`LedgerReader::readable_end`]) in order, with
    /// up to `depth` reads in flight: a sequential reader (an offload, a catch-up) waits for
    /// one round trip per `depth` entries instead of one per entry.
    pub fn read_many(
        &self,
        from: EntryId,
        to: EntryId,
        depth: usize,
    ) -> impl futures::Stream<Item = Result<Entry, LedgerError>> + Send + use<> {
        let end = self.readable_end();
        let past = end.is_none_or(|e| to > e).then_some(LedgerError::PastEnd {
            ledger: self.meta.id,
            entry: to,
            end,
        });
        let inner = self.inner.clone();
        let meta = Arc::new(self.meta.clone());
        let entries = if past.is_some() || from > to {
            0..0
        } else {
            from.0..to.0 + 1
        };
        let reads = futures::stream::iter(entries)
            .map(move |e| {
                let (inner, meta) = (inner.clone(), meta.clone());
                async move { fetch(&inner, &meta, EntryId(e)).await.map(|(e, _)| e) }
            })
            .buffered(depth.max(1));
        futures::stream::iter(past.map(Err)).chain(reads)
    }
    /// Asks the ledger's last ensemble for the LAC and remembers the highest answer.
    pub async fn read_lac(&mut self) -> Result<Option<EntryId>, LedgerError> {
        self.poll_lac(None, Duration::ZERO).await
    }

    /// Waits up to `wait` for the LAC to pass `known`; returns the highest LAC seen.
    pub async fn wait_lac(
        &mut self,
        known: Option<EntryId>,
        wait: Duration,
    ) -> Result<Option<EntryId>, LedgerError> {
        self.poll_lac(known, wait).await
    }

    async fn poll_lac(
        &mut self,
        known: Option<EntryId>,
        wait: Duration,
    ) -> Result<Option<EntryId>, LedgerError> {
        if self.meta.state == LedgerState::Closed {
            return Ok(self.meta.last_entry);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let unknown_everywhere = self.poll_lac_once(known, left).await?;
            // A bookie that has not received an entry of the ledger yet does not know it and
            // cannot long-poll it: look again shortly while the wait lasts.
            if !unknown_everywhere || self.lac > known || left.is_zero() {
                return Ok(self.lac);
            }
            tokio::time::sleep(NEW_LEDGER_POLL.min(left)).await;
        }
    }

    /// One round of LAC requests; whether every bookie that answered did not know the
    /// ledger yet.
    async fn poll_lac_once(
        &mut self,
        known: Option<EntryId>,
        wait: Duration,
    ) -> Result<bool, LedgerError> {
        let id = self.meta.id;
        let mut asks: FuturesUnordered<_> = self
            .meta
            .current_ensemble()
            .iter()
            .cloned()
            .map(|b| {
                let inner = self.inner.clone();
                async move {
                    match inner.pool.get(&b).await {
                        Ok(c) => c.read_lac(id, known, wait).await,
                        Err(e) => Err(e),
                    }
                }
            })
            .collect();
        let mut last_err = None;
        let mut answered = false;
        let mut knew = false;
        while let Some(r) = asks.next().await {
            match r {
                Ok(info) => {
                    answered = true;
                    knew = true;
                    if info.lac > self.lac {
                        self.lac = info.lac;
                    }
                    // A long-poll is satisfied by the first bookie that has news.
                    if wait > Duration::ZERO && info.lac > known {
                        break;
                    }
                }
                // No entry of the ledger has reached this bookie: no LAC to report.
                Err(e) if e.code() == Some(ErrorCode::NoSuchLedger) => answered = true,
                Err(e) => last_err = Some(e),
            }
        }
        match (answered, last_err) {
            (false, Some(e)) => Err(e.into()),
            _ => Ok(!knew),
        }
    }
}

/// Reads `entry` from the replicas of its write set (see the module docs); returns it and the
/// LAC the answering bookie reported.
async fn fetch(
    inner: &Arc<Inner>,
    meta: &LedgerMetadata,
    entry: EntryId,
) -> Result<(Entry, Option<EntryId>), LedgerError> {
    let ws = meta.write_set(entry);
    let id = meta.id;
    let max = inner.opts.max_payload + 64;
    let delay = inner.opts.speculative_read_delay;
    let mut tries = FuturesUnordered::new();
    let mut next = 0;
    let mut why = Vec::new();
    loop {
        if next < ws.len() {
            let (inner, b) = (inner.clone(), ws[next].clone());
            next += 1;
            tries.push(async move {
                let r = match inner.pool.get(&b).await {
                    Ok(c) => c.read(id, entry, None).await,
                    Err(e) => Err(e),
                };
                (b, r)
            });
        }
        let outcome = if next < ws.len() {
            tokio::time::timeout(delay, tries.next()).await.ok()
        } else {
            Some(tries.next().await)
        };
        match outcome {
            // Slow replica: ask the next one too.
            None => continue,
            Some(None) => {
                return Err(LedgerError::Unreadable {
                    ledger: id,
                    entry,
                    why: why.join("; "),
                });
            }
            Some(Some((b, Ok(ok)))) => match Entry::decode(ok.data, max) {
                Ok(e) if (e.ledger, e.entry) == (id, entry) => {
                    return Ok((e, ok.lac));
                }
                Ok(e) => why.push(format!("{b}: returned {}/{}", e.ledger, e.entry)),
                Err(e) => why.push(format!("{b}: {e}")),
            },
            Some(Some((b, Err(e)))) => why.push(format!("{b}: {e}")),
        }
    }
}
