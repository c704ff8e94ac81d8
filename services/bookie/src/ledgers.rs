//! The in-memory table of ledgers this bookie knows, with their fencing state and LAC.
//!
//! Each ledger has two views under one lock:
//! - `admit`: what requests are checked against. A fence raises `fence_epoch` here the moment
//!   it is accepted, so no add of an older epoch is admitted after it, even before the fence is
//!   durable; an add raises `last_entry` when queued.
//! - `durable`: what the journal has made durable and the index has applied. This is what is
//!   persisted and what readers are shown (the LAC).
//!
//! Taking the lock around "check, then queue in the journal" serialises a fence with the adds of
//! its ledger: every add admitted before the fence is queued before it, so it is durable no later
//! than the fence, and its entry is at or below the `last_entry` the fence reports.

use std::collections::HashMap;
use std::sync::Arc;

use dlog_api::wire::bookie::LacInfo;
use dlog_api::{EntryId, Epoch, LedgerId};
use parking_lot::{Mutex, MutexGuard, RwLock};
use tokio::sync::watch;

use crate::error::BookieError;
use crate::index::LedgerMeta;

#[derive(Debug, Default, Clone, Copy)]
pub struct SlotState {
    pub admit: LedgerMeta,
    pub durable: LedgerMeta,
    /// Set when the bookie found damage it could not attribute: a fence of this ledger may
    /// have been lost with it, so adds at or below this epoch are refused (the writer replaces
    /// this bookie); higher epochs — a writer that recovered the ledger since — are accepted.
    pub suspect_upto: Option<dlog_api::Epoch>,
}

/// The fencing rules, on a ledger's state alone (no IO): the bookie calls them under the
/// ledger's lock, and the replication simulation (`dlog-ledger`'s `tests/sim.rs`) runs its
/// bookies on them.
impl SlotState {
    /// Whether a request at `epoch` may write to the ledger: it is not deleted and no fence of
    /// a higher epoch was accepted.
    pub fn check_epoch(&self, ledger: LedgerId, epoch: Epoch) -> Result<(), BookieError> {
        if self.admit.deleted {
            return Err(BookieError::LedgerDeleted(ledger));
        }
        if epoch < self.admit.fence_epoch {
            return Err(BookieError::Fenced {
                ledger,
                epoch,
                fence_epoch: self.admit.fence_epoch,
            });
        }
        Ok(())
    }

    /// Admits adds at `epoch` up to entry `highest`: [`SlotState::check_epoch`], and refused
    /// while the ledger is suspect at that epoch. The caller queues the adds before it
    /// releases the lock.
    pub fn admit_adds(
        &mut self,
        ledger: LedgerId,
        epoch: Epoch,
        highest: Option<EntryId>,
    ) -> Result<(), BookieError> {
        self.check_epoch(ledger, epoch)?;
        if let Some(upto) = self.suspect_upto
            && epoch <= upto
        {
            return Err(BookieError::SuspectLedger(ledger, upto));
        }
        raise(&mut self.admit.last_entry, highest);
        Ok(())
    }

    /// Fences the ledger at `epoch`: from now on adds below it are refused. Returns what the
    /// fence reports: the durable LAC and the highest entry admitted so far (every admitted
    /// add is queued before the fence, so it is durable no later than the fence).
    pub fn fence(&mut self, ledger: LedgerId, epoch: Epoch) -> Result<LacInfo, BookieError> {
        self.check_epoch(ledger, epoch)?;
        self.admit.fence_epoch = epoch;
        Ok(LacInfo {
            lac: self.durable.lac,
            last_entry: self.admit.last_entry,
            fence_epoch: epoch,
        })
    }
}

#[derive(Debug)]
pub struct LedgerSlot {
    state: Mutex<SlotState>,
    lac: watch::Sender<Option<EntryId>>,
}

impl LedgerSlot {
    fn new(meta: LedgerMeta) -> Self {
        Self {
            state: Mutex::new(SlotState {
                admit: meta,
                durable: meta,
                suspect_upto: None,
            }),
            lac: watch::Sender::new(meta.lac),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock()
    }

    /// Wakes long-poll readers if the durable LAC moved.
    pub fn publish_lac(&self, lac: Option<EntryId>) {
        self.lac.send_if_modified(|cur| {
            if lac > *cur {
                *cur = lac;
                true
            } else {
                false
            }
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<EntryId>> {
        self.lac.subscribe()
    }
}

#[derive(Debug, Default)]
pub struct LedgerTable {
    map: RwLock<HashMap<LedgerId, Arc<LedgerSlot>>>,
}

impl LedgerTable {
    pub fn load(metas: Vec<(LedgerId, LedgerMeta)>) -> Self {
        let map = metas
            .into_iter()
            .map(|(id, m)| (id, Arc::new(LedgerSlot::new(m))))
            .collect();
        Self {
            map: RwLock::new(map),
        }
    }

    pub fn get(&self, id: LedgerId) -> Option<Arc<LedgerSlot>> {
        self.map.read().get(&id).cloned()
    }

    pub fn get_or_create(&self, id: LedgerId) -> Arc<LedgerSlot> {
        if let Some(s) = self.get(id) {
            return s;
        }
        self.map
            .write()
            .entry(id)
            .or_insert_with(|| Arc::new(LedgerSlot::new(LedgerMeta::default())))
            .clone()
    }

    /// After damage: every known ledger refuses adds at or below the highest epoch it has seen.
    pub fn suspect_all(&self) {
        for slot in self.map.read().values() {
            let mut st = slot.lock();
            st.suspect_upto = Some(st.admit.max_epoch.max(st.durable.max_epoch));
        }
    }

    /// Ledgers known and not deleted.
    pub fn live_count(&self) -> u64 {
        self.map
            .read()
            .values()
            .filter(|s| !s.lock().admit.deleted)
            .count() as u64
    }
}

/// Raises `a` to `b` if `b` is higher (`None` is lowest).
pub fn raise(a: &mut Option<EntryId>, b: Option<EntryId>) {
    if b > *a {
        *a = b;
    }
}
