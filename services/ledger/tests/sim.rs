//! Deterministic simulation of the replication protocol: the real writer and recovery cores
//! (`WriterCore`, `RecoveryCore`) drive simulated bookies over a simulated network, with the
//! metadata store as an in-memory compare-and-set register. A simulated bookie keeps its
//! fencing state in the real bookie's `SlotState` and admits adds, fences and fencing reads
//! with the real bookie's rules; only its storage is a map. Each
//! actor has its own FIFO connection to each bookie, and connections are not ordered with each
//! other. A seed decides everything: its fault profile (swarm testing: each seed weighs the
//! faults differently, see `Profile`), which message is delivered next, bookie crashes and
//! restarts, connection resets, slow connections, requests that time out at the writer while
//! the bookie still processes them later (slow bookies), and when one or two recoveries start.
//! After every step the invariants are checked:
//!
//! - the writer's acknowledgements are dense and in order;
//! - every acknowledged entry is held, with the writer's exact bytes, by at least Qa bookies of
//!   its write set in the current metadata (so the LAC is never beyond what Qa bookies hold);
//! - once closed, the ledger never changes, and it ends at or after every acknowledged entry;
//! - an entry id never holds two different byte strings on any bookies;
//! - the writer acknowledges nothing beyond the sealed end (one unfenced writer).
//!
//! At the end every bookie comes back, the network drains, and recovery is retried until the
//! ledger is closed (liveness). A failure names its seed; `DLOG_SIM_SEED=n` replays one seed and
//! `DLOG_SIM_SEEDS=n` sets how many run (default 1000).
//!
//! The simulation must also catch a deliberately broken protocol: `Variant::NonFencingReads`
//! (recovery reads that do not fence, BookKeeper issue #2614) is run both as the exact
//! interleaving, step by step, and as a random search that must find a violation.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use dlog_api::wire::bookie::{AddEntry, LacInfo};
use dlog_api::{BookieId, Entry, EntryId, Epoch, LedgerId};
use dlog_bookie::BookieError;
use dlog_bookie::ledgers::{SlotState, raise};
use dlog_ledger::metadata::{LedgerMetadata, LedgerState, Quorum};
use dlog_ledger::recovery::{
    ReadFailure, RecoveryCommand, RecoveryCore, RecoveryError, RecoveryEvent,
};
use dlog_ledger::writer::{AddFailure, WriteError, WriterCommand, WriterCore, WriterEvent};

const LEDGER: LedgerId = LedgerId(1);

fn payload(e: u64) -> Bytes {
    Bytes::from(format!("payload of entry {e}").repeat((e % 3 + 1) as usize))
}

/// The writer's exact bytes of entry `e` (lengths follow from the deterministic payloads).
fn sealed(e: u64) -> Bytes {
    static TABLE: std::sync::OnceLock<Vec<Bytes>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut len = 0;
        (0..MAX_ENTRIES)
            .map(|i| {
                len += payload(i).len() as u64;
                Entry::encode(LEDGER, EntryId(i), len, &payload(i))
            })
            .collect()
    });
    table[e as usize].clone()
}

const MAX_ENTRIES: u64 = 80;

/// A simulated bookie: its fencing and LAC state is the real bookie's (`SlotState`, with the
/// bookie's own admission and fence rules); its storage is a map, durable as soon as an add is
/// processed (a real bookie answers only once the add is durable, and keeps it across a
/// crash).
#[derive(Debug, Default)]
struct BookieState {
    alive: bool,
    slot: SlotState,
    entries: BTreeMap<EntryId, Bytes>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Actor {
    Writer,
    Recovery(u32),
}

#[derive(Debug)]
enum Req {
    Add(AddEntry),
    Fence(Epoch),
    /// A recovery read; it fences at the epoch when there is one (the correct protocol).
    Read(EntryId, Option<Epoch>),
    WriteLac(EntryId, Epoch),
}

#[derive(Debug)]
enum Resp {
    Added(EntryId),
    AddFailed(EntryId, bool),
    Fenced(LacInfo),
    FenceFailed(ReadFailure),
    Read(EntryId, Result<Bytes, ReadFailure>),
    Ignored,
}

#[derive(Debug)]
struct Msg {
    actor: Actor,
    bookie: BookieId,
    req: Req,
}

/// A metadata operation's outcome, delivered later like a message.
#[derive(Debug)]
enum MetaDone {
    Writer(WriterEvent),
    Recovery(u32, RecoveryEvent),
}

struct Sim {
    seed: u64,
    rng: fastrand::Rng,
    bookies: BTreeMap<BookieId, BookieState>,
    /// Requests in flight, per connection (each actor has its own to each bookie), in order:
    /// a connection is FIFO, but different connections to one bookie are not ordered.
    links: BTreeMap<(Actor, BookieId), VecDeque<Msg>>,
    /// Responses in flight to the actors.
    responses: VecDeque<(Actor, BookieId, Resp)>,
    meta_done: VecDeque<MetaDone>,
    meta: LedgerMetadata,
    version: u64,
    writer: Option<WriterCore>,
    writer_version: u64,
    recoveries: HashMap<u32, (RecoveryCore, u64)>,
    next_recovery: u32,
    appended: u64,
    acked: Vec<u64>,
    closed: Option<LedgerMetadata>,
    log: Vec<String>,
    variant: Variant,
    profile: Profile,
}

/// One step of the schedule.
#[derive(Debug, Clone, Copy)]
enum Action {
    Process,
    Respond,
    Metadata,
    Append,
    CrashOrRestart,
    SlowBookie,
    /// A connection of the writer resets.
    ResetWriter,
    /// A connection of a recovery resets.
    ResetRecovery,
    StartRecovery,
    Close,
    Idle,
}

/// How often each action is picked. Each seed draws its own fault weights ("swarm testing"):
/// a seed heavy on one fault reaches deep interleavings of it that uniform weights make rare.
#[derive(Debug)]
struct Profile {
    weights: Vec<(Action, u32)>,
    total: u32,
    /// How fast the writer's connection to each bookie (by index) delivers, in eighths of
    /// every other connection's speed: a slow connection's adds arrive long after they were
    /// sent.
    writer_link_speed: Vec<u32>,
    /// When a recovery starts, its fence to one bookie is lost.
    lose_fence: bool,
    /// How many entries the writer appends, and after how many a recovery may start.
    appends: u64,
    recovery_after: u64,
}

impl Profile {
    /// A seed's profile: usually a random mix of faults; one seed in eight is a
    /// [`Profile::degraded_writer`] race.
    fn draw(rng: &mut fastrand::Rng) -> Profile {
        if rng.u32(..8) == 0 {
            return Profile::degraded_writer(rng);
        }
        let mut fault = || [0, 1, 2, 4][rng.usize(..4)];
        let weights = Profile::weights(
            3 * fault(),
            2 * fault(),
            2 * fault(),
            4 * fault(),
            1 + fault(),
        );
        let slow_links = rng.u32(..3) == 0;
        let writer_link_speed = (0..8)
            .map(|_| {
                if slow_links && rng.u32(..3) == 0 {
                    1
                } else {
                    8
                }
            })
            .collect();
        let lose_fence = rng.u32(..4) == 0;
        Profile::new(weights, writer_link_speed, lose_fence, MAX_ENTRIES, 30)
    }

    /// Few entries, the writer's node slow on every connection (often why another node starts
    /// a recovery), the recovery's fence to one bookie lost, and no other faults: the races
    /// between a recovery's reads and the old writer's last adds, which many entries in flight
    /// or other faults make rare (any refusal the writer hears first stops it).
    fn degraded_writer(rng: &mut fastrand::Rng) -> Profile {
        let appends = rng.u64(1..=4);
        let recovery_after = rng.u64(..appends);
        Profile::new(
            Profile::weights(0, 0, 0, 0, 2),
            vec![1; 8],
            true,
            appends,
            recovery_after,
        )
    }

    fn weights(
        crash: u32,
        slow: u32,
        reset_writer: u32,
        reset_recovery: u32,
        recovery: u32,
    ) -> Vec<(Action, u32)> {
        vec![
            (Action::Process, 40),
            (Action::Respond, 35),
            (Action::Metadata, 5),
            (Action::Append, 10),
            (Action::CrashOrRestart, crash),
            (Action::SlowBookie, slow),
            (Action::ResetWriter, reset_writer),
            (Action::ResetRecovery, reset_recovery),
            (Action::StartRecovery, recovery),
            (Action::Close, 1),
            (Action::Idle, 3),
        ]
    }

    fn new(
        weights: Vec<(Action, u32)>,
        writer_link_speed: Vec<u32>,
        lose_fence: bool,
        appends: u64,
        recovery_after: u64,
    ) -> Profile {
        let total = weights.iter().map(|(_, w)| w).sum();
        Profile {
            weights,
            total,
            writer_link_speed,
            lose_fence,
            appends,
            recovery_after,
        }
    }

    fn pick(&self, rng: &mut fastrand::Rng) -> Action {
        let mut x = rng.u32(..self.total);
        for &(a, w) in &self.weights {
            if x < w {
                return a;
            }
            x -= w;
        }
        unreachable!("x < total")
    }
}

/// Which protocol the simulation runs: the real one, or a deliberately broken one that the
/// invariants must catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Correct,
    /// Recovery reads that do not fence (the bug of BookKeeper issue #2614).
    NonFencingReads,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        Sim::with_variant(seed, Variant::Correct)
    }

    fn with_variant(seed: u64, variant: Variant) -> Sim {
        Sim::with_profile(seed, variant, Profile::draw)
    }

    fn with_profile(
        seed: u64,
        variant: Variant,
        profile: fn(&mut fastrand::Rng) -> Profile,
    ) -> Sim {
        let mut rng = fastrand::Rng::with_seed(seed);
        let profile = profile(&mut rng);
        let quorum = [(3, 3, 2), (3, 2, 2), (4, 3, 2), (3, 3, 3), (5, 3, 2)][rng.usize(..5)];
        let n = usize::from(quorum.0) + 2;
        let ids: Vec<BookieId> = (0..n)
            .map(|i| BookieId::new(format!("b{i}")).unwrap())
            .collect();
        let q = Quorum::new(quorum.0, quorum.1, quorum.2).unwrap();
        let meta = LedgerMetadata::new(
            LEDGER,
            q,
            Epoch(1),
            ids[..usize::from(quorum.0)].to_vec(),
            0,
        )
        .unwrap();
        let bookies = ids
            .iter()
            .map(|b| {
                (
                    b.clone(),
                    BookieState {
                        alive: true,
                        ..Default::default()
                    },
                )
            })
            .collect();
        Sim {
            seed,
            rng,
            bookies,
            links: BTreeMap::new(),
            responses: VecDeque::new(),
            meta_done: VecDeque::new(),
            writer: Some(WriterCore::new(meta.clone(), 1 << 20)),
            meta,
            version: 1,
            writer_version: 1,
            recoveries: HashMap::new(),
            next_recovery: 0,
            appended: 0,
            acked: Vec::new(),
            closed: None,
            log: Vec::new(),
            variant,
            profile,
        }
    }

    fn fail(&self, what: String) -> ! {
        let tail: Vec<_> = self.log.iter().rev().take(40).rev().cloned().collect();
        panic!(
            "simulation seed {} failed: {what}\nreplay with DLOG_SIM_SEED={}\nlast steps:\n{}",
            self.seed,
            self.seed,
            tail.join("\n")
        );
    }

    fn alive_count(&self) -> usize {
        self.bookies.values().filter(|b| b.alive).count()
    }

    // ---- metadata store: a compare-and-set register ----

    fn cas(&mut self, next: LedgerMetadata, expected: u64) -> Option<u64> {
        if self.version != expected {
            return None;
        }
        if let Some(c) = &self.closed
            && &next != c
        {
            self.fail(format!("closed ledger changed from {c:?} to {next:?}"));
        }
        if next.state == LedgerState::Closed && self.closed.is_none() {
            self.closed = Some(next.clone());
        }
        self.meta = next;
        self.version += 1;
        Some(self.version)
    }

    // ---- actors ----

    fn writer_cmds(&mut self, cmds: Vec<WriterCommand>) {
        for c in cmds {
            match c {
                WriterCommand::Send { bookie, add } => {
                    self.send(Actor::Writer, bookie, Req::Add(add))
                }
                WriterCommand::WriteLac { bookie, lac } => {
                    let epoch = self.writer.as_ref().unwrap().metadata().epoch;
                    self.send(Actor::Writer, bookie, Req::WriteLac(lac, epoch))
                }
                WriterCommand::Acked { token, entry } => {
                    if token != entry.0 || entry.0 != self.acked.len() as u64 {
                        self.fail(format!(
                            "ack {entry} (token {token}) out of order after {:?}",
                            self.acked.last()
                        ));
                    }
                    self.acked.push(entry.0);
                }
                WriterCommand::Failed { .. } => {}
                WriterCommand::ReplaceBookies {
                    first_entry,
                    failed,
                } => {
                    let w = self.writer.as_ref().unwrap();
                    let current = w.metadata().current_ensemble().to_vec();
                    let mut spare: Vec<BookieId> = self
                        .bookies
                        .iter()
                        .filter(|(id, b)| b.alive && !current.contains(id))
                        .map(|(id, _)| id.clone())
                        .collect();
                    self.rng.shuffle(&mut spare);
                    let ev = if spare.len() < failed.len() {
                        WriterEvent::EnsembleChangeFailed {
                            error: WriteError::Unavailable("no spare bookie".into()),
                        }
                    } else {
                        let pairs: Vec<_> = failed.into_iter().zip(spare).collect();
                        let next = w.metadata().with_replacements(first_entry, &pairs).unwrap();
                        match self.cas(next.clone(), self.writer_version) {
                            Some(v) => {
                                self.writer_version = v;
                                WriterEvent::EnsembleChanged { metadata: next }
                            }
                            None => WriterEvent::EnsembleChangeFailed {
                                error: WriteError::Fenced,
                            },
                        }
                    };
                    self.meta_done.push_back(MetaDone::Writer(ev));
                }
                WriterCommand::CloseLedger { last_entry, length } => {
                    let mut next = self.writer.as_ref().unwrap().metadata().clone();
                    next.state = LedgerState::Closed;
                    next.last_entry = last_entry;
                    next.length = length;
                    let ev = match self.cas(next.clone(), self.writer_version) {
                        Some(v) => {
                            self.writer_version = v;
                            WriterEvent::Closed { metadata: next }
                        }
                        None => WriterEvent::CloseFailed {
                            error: WriteError::Fenced,
                        },
                    };
                    self.meta_done.push_back(MetaDone::Writer(ev));
                }
                WriterCommand::Finished(_) => {}
            }
        }
    }

    fn start_recovery(&mut self, faults: bool) {
        if self.meta.state == LedgerState::Closed {
            return;
        }
        let mut next = self.meta.clone();
        next.state = LedgerState::InRecovery;
        next.epoch = self.meta.epoch.next();
        let v = self.cas(next.clone(), self.version).unwrap();
        let id = self.next_recovery;
        self.next_recovery += 1;
        self.log
            .push(format!("recovery {id} starts at epoch {}", next.epoch));
        let (core, cmds) = RecoveryCore::start(next, 1 << 21);
        self.recoveries.insert(id, (core, v));
        self.recovery_cmds(id, cmds);
        if faults && self.profile.lose_fence {
            // The fence to one bookie is lost with its connection (the recovering node and that
            // bookie were cut off for a moment); the writer's connection to it is unaffected.
            let ens = self.meta.current_ensemble().to_vec();
            let b = ens[self.rng.usize(..ens.len())].clone();
            let link = (Actor::Recovery(id), b);
            if self.links.get(&link).is_some_and(|q| !q.is_empty()) {
                self.log
                    .push(format!("the fence of recovery {id} to {} is lost", link.1));
                self.reset(&link);
            }
        }
    }

    fn recovery_cmds(&mut self, id: u32, cmds: Vec<RecoveryCommand>) {
        for c in cmds {
            let epoch = self.recoveries[&id].0.metadata().epoch;
            match c {
                RecoveryCommand::Fence { bookie } => {
                    self.send(Actor::Recovery(id), bookie, Req::Fence(epoch))
                }
                RecoveryCommand::Read { bookie, entry } => {
                    let fence = (self.variant != Variant::NonFencingReads).then_some(epoch);
                    self.send(Actor::Recovery(id), bookie, Req::Read(entry, fence))
                }
                RecoveryCommand::Send { bookie, add } => {
                    self.send(Actor::Recovery(id), bookie, Req::Add(add))
                }
                RecoveryCommand::CloseLedger { last_entry, length } => {
                    let (core, v) = &self.recoveries[&id];
                    let mut next = core.metadata().clone();
                    next.state = LedgerState::Closed;
                    next.last_entry = last_entry;
                    next.length = length;
                    let v = *v;
                    let ev = match self.cas(next.clone(), v) {
                        Some(_) => RecoveryEvent::Closed { metadata: next },
                        None => RecoveryEvent::CloseFailed {
                            error: RecoveryError::Fenced,
                        },
                    };
                    self.meta_done.push_back(MetaDone::Recovery(id, ev));
                }
                RecoveryCommand::Finished(r) => {
                    self.log.push(format!("recovery {id} finished: {r:?}"));
                }
            }
        }
    }

    fn send(&mut self, actor: Actor, bookie: BookieId, req: Req) {
        if !self.bookies[&bookie].alive {
            // Connection refused: the actor hears at once.
            let resp = failure_for(&req);
            self.responses.push_back((actor, bookie, resp));
            return;
        }
        self.links
            .entry((actor, bookie.clone()))
            .or_default()
            .push_back(Msg {
                actor,
                bookie: bookie.clone(),
                req,
            });
    }

    // ---- bookies ----

    fn process(&mut self, m: Msg) {
        let b = self.bookies.get_mut(&m.bookie).unwrap();
        let resp = match m.req {
            Req::Add(a) => match b.slot.admit_adds(LEDGER, a.epoch, Some(a.entry)) {
                Err(e) => Resp::AddFailed(a.entry, matches!(e, BookieError::Fenced { .. })),
                Ok(()) => {
                    if let Some(old) = b.entries.get(&a.entry)
                        && old != &a.data
                    {
                        let what = format!(
                            "entry {} rewritten with other bytes on {}",
                            a.entry, m.bookie
                        );
                        self.fail(what);
                    }
                    b.entries.insert(a.entry, a.data);
                    raise(&mut b.slot.durable.lac, a.lac);
                    raise(&mut b.slot.durable.last_entry, Some(a.entry));
                    Resp::Added(a.entry)
                }
            },
            Req::Fence(e) => match b.slot.fence(LEDGER, e) {
                Ok(info) => Resp::Fenced(info),
                Err(_) => Resp::FenceFailed(ReadFailure::Fenced),
            },
            Req::Read(entry, fence) => {
                match fence.map_or(Ok(()), |e| b.slot.fence(LEDGER, e).map(|_| ())) {
                    Err(_) => Resp::Read(entry, Err(ReadFailure::Fenced)),
                    Ok(()) => match b.entries.get(&entry) {
                        Some(d) => Resp::Read(entry, Ok(d.clone())),
                        None => Resp::Read(entry, Err(ReadFailure::NoSuchEntry)),
                    },
                }
            }
            Req::WriteLac(l, epoch) => {
                if b.slot.check_epoch(LEDGER, epoch).is_ok() {
                    raise(&mut b.slot.durable.lac, Some(l));
                }
                Resp::Ignored
            }
        };
        self.responses.push_back((m.actor, m.bookie, resp));
    }

    fn deliver(&mut self, actor: Actor, bookie: BookieId, resp: Resp) {
        match actor {
            Actor::Writer => {
                let ev = match resp {
                    Resp::Added(entry) => WriterEvent::AddAcked { bookie, entry },
                    Resp::AddFailed(entry, fenced) => WriterEvent::AddFailed {
                        bookie,
                        entry,
                        failure: if fenced {
                            AddFailure::Fenced
                        } else {
                            AddFailure::Unavailable("timeout".into())
                        },
                    },
                    _ => return,
                };
                let Some(w) = self.writer.as_mut() else {
                    return;
                };
                let cmds = w.handle(ev);
                self.writer_cmds(cmds);
            }
            Actor::Recovery(id) => {
                let ev = match resp {
                    Resp::Added(entry) => RecoveryEvent::AddAcked { bookie, entry },
                    Resp::AddFailed(entry, fenced) => RecoveryEvent::AddFailed {
                        bookie,
                        entry,
                        fenced,
                    },
                    Resp::Fenced(info) => RecoveryEvent::FenceOk { bookie, info },
                    Resp::FenceFailed(failure) => RecoveryEvent::FenceFailed { bookie, failure },
                    Resp::Read(entry, Ok(data)) => RecoveryEvent::ReadOk {
                        bookie,
                        entry,
                        data,
                    },
                    Resp::Read(entry, Err(failure)) => RecoveryEvent::ReadFailed {
                        bookie,
                        entry,
                        failure,
                    },
                    Resp::Ignored => return,
                };
                let cmds = self.recoveries.get_mut(&id).unwrap().0.handle(ev);
                self.recovery_cmds(id, cmds);
            }
        }
    }

    // ---- the schedule ----

    fn step(&mut self, allow_faults: bool) -> bool {
        let busy: Vec<(Actor, BookieId)> = self
            .links
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        let action = self.profile.pick(&mut self.rng);
        match action {
            Action::Process if !busy.is_empty() => {
                let speed = |l: &(Actor, BookieId)| match l.0 {
                    Actor::Writer => {
                        let i: usize = l.1.as_str()[1..].parse().unwrap();
                        self.profile.writer_link_speed[i]
                    }
                    Actor::Recovery(_) => 8,
                };
                let link = busy[self.rng.usize(..busy.len())].clone();
                if self.rng.u32(..8) >= speed(&link) {
                    return true; // a slow connection: nothing arrives this step
                }
                let b = link.1.clone();
                let m = self.links.get_mut(&link).unwrap().pop_front().unwrap();
                self.log.push(format!(
                    "{b} processes {:?} from {:?}",
                    short(&m.req),
                    m.actor
                ));
                self.process(m);
            }
            Action::Respond if !self.responses.is_empty() => {
                // Responses of different bookies interleave freely.
                let i = self.rng.usize(..self.responses.len());
                let (a, b, r) = self.responses.remove(i).unwrap();
                self.log.push(
                    format!("{a:?} hears {r:?} from {b}")
                        .chars()
                        .take(160)
                        .collect(),
                );
                self.deliver(a, b, r);
            }
            Action::Metadata if !self.meta_done.is_empty() => {
                match self.meta_done.pop_front().unwrap() {
                    MetaDone::Writer(ev) => {
                        self.log.push(format!(
                            "writer metadata result {:?}",
                            std::mem::discriminant(&ev)
                        ));
                        if let Some(w) = self.writer.as_mut() {
                            let cmds = w.handle(ev);
                            self.writer_cmds(cmds);
                        }
                    }
                    MetaDone::Recovery(id, ev) => {
                        let cmds = self.recoveries.get_mut(&id).unwrap().0.handle(ev);
                        self.recovery_cmds(id, cmds);
                    }
                }
            }
            Action::Append if self.appended < self.profile.appends && self.writer.is_some() => {
                let e = self.appended;
                self.appended += 1;
                self.log.push(format!("append {e}"));
                let cmds = self.writer.as_mut().unwrap().handle(WriterEvent::Append {
                    token: e,
                    payload: payload(e),
                });
                self.writer_cmds(cmds);
            }
            Action::CrashOrRestart if allow_faults => {
                // A bookie crashes (its queued requests are lost, their senders time out) or
                // comes back.
                let ids: Vec<BookieId> = self.bookies.keys().cloned().collect();
                let b = ids[self.rng.usize(..ids.len())].clone();
                let alive = self.bookies[&b].alive;
                if alive
                    && self.rng.u32(..3) == 0
                    && self.alive_count() > usize::from(self.meta.quorum.ensemble)
                {
                    self.log.push(format!("{b} crashes"));
                    self.bookies.get_mut(&b).unwrap().alive = false;
                    let links: Vec<_> = busy.iter().filter(|l| l.1 == b).cloned().collect();
                    for link in links {
                        self.reset(&link);
                    }
                } else if !alive {
                    self.log.push(format!("{b} restarts"));
                    self.bookies.get_mut(&b).unwrap().alive = true;
                }
            }
            Action::SlowBookie if allow_faults => {
                // A slow bookie: the writer times the request out, but the bookie still has it
                // queued and will process (and answer) it later.
                if let Some(link) = busy.iter().find(|l| l.0 == Actor::Writer) {
                    let b = &link.1;
                    let q = &self.links[link];
                    let i = self.rng.usize(..q.len());
                    if let Msg {
                        actor: Actor::Writer,
                        req: Req::Add(a),
                        ..
                    } = &q[i]
                    {
                        self.log
                            .push(format!("writer times out entry {} on {b}", a.entry));
                        let r = Resp::AddFailed(a.entry, false);
                        self.responses.push_back((Actor::Writer, b.clone(), r));
                    }
                }
            }
            Action::ResetWriter | Action::ResetRecovery
                if allow_faults
                    && busy.iter().any(|l| {
                        (l.0 == Actor::Writer) == matches!(action, Action::ResetWriter)
                    }) =>
            {
                // A connection resets: what it carried is lost, its sender hears an error, and
                // the next request to that bookie goes over a new connection.
                let of_writer = matches!(action, Action::ResetWriter);
                let links: Vec<_> = busy
                    .iter()
                    .filter(|l| (l.0 == Actor::Writer) == of_writer)
                    .collect();
                let link = links[self.rng.usize(..links.len())].clone();
                self.log
                    .push(format!("connection {:?} -> {} resets", link.0, link.1));
                self.reset(&link);
            }
            Action::StartRecovery
                if allow_faults
                    && self.next_recovery < 2
                    && self.appended > self.profile.recovery_after
                    && self.rng.u32(..3) == 0 =>
            {
                self.start_recovery(true)
            }
            Action::Close
                if allow_faults
                    && self.appended > self.profile.appends * 3 / 4
                    && self.writer.as_ref().is_some_and(|w| !w.is_finished()) =>
            {
                self.log.push("writer closes".into());
                let cmds = self.writer.as_mut().unwrap().handle(WriterEvent::Close);
                self.writer_cmds(cmds);
            }
            _ => {
                return !busy.is_empty()
                    || !self.responses.is_empty()
                    || !self.meta_done.is_empty();
            }
        }
        self.check();
        true
    }

    /// Drops the requests queued on a connection, failing them back to their sender.
    fn reset(&mut self, link: &(Actor, BookieId)) {
        let lost: Vec<Msg> = self.links.get_mut(link).unwrap().drain(..).collect();
        for m in lost {
            let r = failure_for(&m.req);
            self.responses.push_back((m.actor, m.bookie, r));
        }
    }

    fn check(&self) {
        let qa = usize::from(self.meta.quorum.ack);
        for &e in &self.acked {
            let ws = self.meta.write_set(EntryId(e));
            let want = sealed(e);
            let held = ws
                .iter()
                .filter(|b| self.bookies[*b].entries.get(&EntryId(e)) == Some(&want))
                .count();
            if held < qa {
                self.fail(format!(
                    "acknowledged entry {e} is held by {held} < {qa} of its write set {ws:?}"
                ));
            }
        }
        if let Some(c) = &self.closed {
            let last_acked = self.acked.last().map(|e| EntryId(*e));
            if last_acked > c.last_entry {
                self.fail(format!(
                    "entry {last_acked:?} acknowledged but the ledger was sealed at {:?}",
                    c.last_entry
                ));
            }
        }
        for b in self.bookies.values() {
            for (e, d) in &b.entries {
                if d != &sealed(e.0) {
                    self.fail(format!("entry {e} holds bytes the writer never wrote"));
                }
            }
        }
    }

    fn run(self) -> Stats {
        let mut s = self;
        s.run_inner();
        Stats {
            acked: s.acked.len() as u64,
            recoveries: u64::from(s.next_recovery),
            fragments: s.meta.fragments.len() as u64,
            crashes: s.log.iter().filter(|l| l.ends_with("crashes")).count() as u64,
            slow: s.log.iter().filter(|l| l.contains("times out")).count() as u64,
        }
    }

    fn run_inner(&mut self) {
        for _ in 0..600 {
            self.step(true);
        }
        // Heal: everyone back, everything delivered, recovery until closed.
        for b in self.bookies.values_mut() {
            b.alive = true;
        }
        for round in 0..20 {
            let mut quiet = 0;
            while quiet < 50 {
                if self.step(false) {
                    quiet = 0;
                } else {
                    quiet += 1;
                }
            }
            if self.closed.is_some() {
                break;
            }
            if round == 19 {
                self.fail("the ledger never closed after healing".into());
            }
            self.start_recovery(false);
        }
        let c = self.closed.clone().expect("closed");
        let len: u64 = c
            .last_entry
            .map_or(0, |l| (0..=l.0).map(|i| payload(i).len() as u64).sum());
        if c.length != len {
            self.fail(format!("sealed length {} != {len}", c.length));
        }
        // Every sealed entry is readable from its write set with the writer's bytes.
        if let Some(last) = c.last_entry {
            for e in 0..=last.0 {
                let ok = c
                    .write_set(EntryId(e))
                    .iter()
                    .any(|b| self.bookies[b].entries.get(&EntryId(e)) == Some(&sealed(e)));
                if !ok {
                    self.fail(format!(
                        "sealed entry {e} is on no replica of its write set"
                    ));
                }
            }
        }
    }
}

fn failure_for(req: &Req) -> Resp {
    match req {
        Req::Add(a) => Resp::AddFailed(a.entry, false),
        Req::Fence(_) => Resp::FenceFailed(ReadFailure::Unknown("bookie down".into())),
        Req::Read(e, _) => Resp::Read(*e, Err(ReadFailure::Unknown("bookie down".into()))),
        Req::WriteLac(..) => Resp::Ignored,
    }
}

fn short(r: &Req) -> String {
    match r {
        Req::Add(a) => format!("add {} e{}", a.entry, a.epoch),
        Req::Fence(e) => format!("fence e{e}"),
        Req::Read(x, Some(e)) => format!("read {x} e{e}"),
        Req::Read(x, None) => format!("read {x} (no fence)"),
        Req::WriteLac(l, _) => format!("lac {l}"),
    }
}

#[derive(Debug, Default)]
struct Stats {
    acked: u64,
    recoveries: u64,
    fragments: u64,
    crashes: u64,
    slow: u64,
}

#[test]
fn simulated_seeds_keep_every_invariant() {
    if let Ok(s) = std::env::var("DLOG_SIM_SEED") {
        Sim::new(s.parse().unwrap()).run();
        return;
    }
    let n: u64 = std::env::var("DLOG_SIM_SEEDS").map_or(1000, |s| s.parse().unwrap());
    let mut total = Stats::default();
    let mut with_change = 0;
    for seed in 0..n {
        let s = Sim::new(seed).run();
        total.acked += s.acked;
        total.recoveries += s.recoveries;
        total.crashes += s.crashes;
        total.slow += s.slow;
        with_change += u64::from(s.fragments > 1);
    }
    // The schedule must actually reach the hard paths, or the run proves little.
    eprintln!(
        "{n} seeds: {} entries acknowledged, {} recoveries, {} crashes, {} slow-bookie \
         timeouts, {with_change} seeds with an ensemble change",
        total.acked, total.recoveries, total.crashes, total.slow
    );
    assert!(total.recoveries > n / 2 && total.crashes > n && total.slow > n / 2);
    assert!(with_change > n / 10 && total.acked > 10 * n);
}

/// Pinned seeds that once exercised interesting paths (kept as regression cases).
#[test]
fn pinned_seeds() {
    for seed in [3, 17, 42, 4242] {
        Sim::new(seed).run();
    }
}

/// The simulation must be able to catch the bug it exists for: with recovery reads that do
/// not fence, a bookie that missed the fence (its connection reset) answers "no such entry",
/// then accepts the old writer's add of that entry; the recovery seals the ledger before an
/// entry the writer goes on to acknowledge (BookKeeper issue #2614). The search runs random
/// seeds of the [`Profile::degraded_writer`] profile, where about one seed in a hundred
/// reaches the race (one in a thousand of the mixed profiles does).
#[test]
fn non_fencing_recovery_reads_are_caught() {
    let n: u64 = 2000;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let caught = (0..n).find_map(|seed| {
        let sim = Sim::with_profile(seed, Variant::NonFencingReads, Profile::degraded_writer);
        std::panic::catch_unwind(|| sim.run())
            .err()
            .map(|e| (seed, panic_text(&e)))
    });
    std::panic::set_hook(hook);
    let (seed, why) = caught.unwrap_or_else(|| {
        panic!("{n} seeds of the broken variant (non-fencing recovery reads) found no violation")
    });
    eprintln!("the broken variant fails at seed {seed}: {why}");
    assert!(
        why.contains("acknowledged but the ledger was sealed")
            || why.contains("acknowledged entry"),
        "the broken variant failed for another reason: {why}"
    );
    // The same seed keeps every invariant with the real protocol.
    Sim::with_profile(seed, Variant::Correct, Profile::degraded_writer).run();
}

fn panic_text(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

impl Sim {
    /// The bookie processes the next request on one connection.
    fn process_next(&mut self, actor: Actor, bookie: &str) {
        let link = (actor, BookieId::new(bookie).unwrap());
        let m = self.links.get_mut(&link).unwrap().pop_front().unwrap();
        self.process(m);
        self.check();
    }

    /// The actor hears every answer `bookie` sent it so far.
    fn hear(&mut self, actor: Actor, bookie: &str) {
        let b = BookieId::new(bookie).unwrap();
        while let Some(i) = self
            .responses
            .iter()
            .position(|(a, from, _)| *a == actor && *from == b)
        {
            let (a, from, r) = self.responses.remove(i).unwrap();
            self.deliver(a, from, r);
            self.check();
        }
    }

    fn apply_metadata(&mut self) {
        while let Some(d) = self.meta_done.pop_front() {
            match d {
                MetaDone::Writer(ev) => {
                    let cmds = self.writer.as_mut().unwrap().handle(ev);
                    self.writer_cmds(cmds);
                }
                MetaDone::Recovery(id, ev) => {
                    let cmds = self.recoveries.get_mut(&id).unwrap().0.handle(ev);
                    self.recovery_cmds(id, cmds);
                }
            }
            self.check();
        }
    }
}

/// The interleaving of BookKeeper issue #2614, step by step, on a 3/3/2 ledger: b0 is fenced
/// before the writer's entry 0 reaches it, b1 takes entry 0 before its fence, and the fence to
/// b2 is lost with its connection. The recovery reads entry 0: b0 says "no such entry", and so
/// does b2, which the writer's add has not reached yet. Two denials out of three: the recovery
/// seals the ledger empty. Then b2 takes the writer's entry 0, and b1 + b2 make an ack quorum.
fn scripted_2614(variant: Variant) -> Result<(), String> {
    let seed = (0..).find(|s| {
        let mut rng = fastrand::Rng::with_seed(*s);
        Profile::draw(&mut rng);
        rng.usize(..5) == 0 // 3/3/2
    });
    let mut sim = Sim::with_variant(seed.unwrap(), variant);
    assert_eq!(sim.meta.quorum, Quorum::new(3, 3, 2).unwrap());
    let cmds = sim.writer.as_mut().unwrap().handle(WriterEvent::Append {
        token: 0,
        payload: payload(0),
    });
    sim.writer_cmds(cmds);
    sim.appended = 1;
    sim.start_recovery(false);
    let r = Actor::Recovery(0);
    let w = Actor::Writer;
    sim.process_next(r, "b0"); // fence
    sim.process_next(w, "b1"); // add 0
    sim.process_next(r, "b1"); // fence
    sim.reset(&(r, BookieId::new("b2").unwrap())); // the fence to b2 is lost
    sim.hear(r, "b0");
    sim.hear(r, "b1");
    sim.hear(r, "b2"); // fencing complete: reads of entry 0 go out
    sim.process_next(r, "b0");
    sim.process_next(r, "b2");
    sim.hear(r, "b0");
    sim.hear(r, "b2");
    sim.apply_metadata();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        sim.process_next(w, "b2"); // the writer's add 0 arrives late
        sim.hear(w, "b1");
        sim.hear(w, "b2");
        sim.acked.len()
    }))
    .map(|acked| eprintln!("{variant:?}: writer acknowledged {acked} entries"))
    .map_err(|e| panic_text(&e))
}

#[test]
fn scripted_bookkeeper_2614() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let broken = scripted_2614(Variant::NonFencingReads);
    let correct = scripted_2614(Variant::Correct);
    std::panic::set_hook(hook);
    let why = broken.expect_err("non-fencing recovery reads must lose entry 0");
    assert!(
        why.contains("acknowledged but the ledger was sealed"),
        "{why}"
    );
    correct.unwrap();
}
