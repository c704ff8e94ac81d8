//! The recovery core's commands for the hard cases: where reading starts, when fencing is
//! enough, when an entry counts as absent, races with other recoveries, bookies failing midway.

use super::*;
use crate::metadata::Quorum;
use dlog_api::{Epoch, LedgerId};

fn b(s: &str) -> BookieId {
    BookieId::new(s).unwrap()
}

const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];

fn meta(e: u8, w: u8, a: u8) -> LedgerMetadata {
    let ens = NAMES[..usize::from(e)].iter().map(|n| b(n)).collect();
    let mut m =
        LedgerMetadata::new(LedgerId(5), Quorum::new(e, w, a).unwrap(), Epoch(1), ens, 0).unwrap();
    m.state = LedgerState::InRecovery;
    m.epoch = Epoch(2);
    m
}

fn info(lac: Option<u64>) -> LacInfo {
    LacInfo {
        lac: lac.map(EntryId),
        last_entry: None,
        fence_epoch: Epoch(2),
    }
}

/// Entry `e` as the writer sealed it: payloads of 10 bytes each.
fn data(e: u64) -> Bytes {
    Entry::encode(LedgerId(5), EntryId(e), 10 * (e + 1), &[e as u8; 10])
}

fn fence_all(r: &mut RecoveryCore, names: &[&str], lac: Option<u64>) -> Vec<RecoveryCommand> {
    let mut out = Vec::new();
    for n in names {
        out.extend(r.handle(RecoveryEvent::FenceOk {
            bookie: b(n),
            info: info(lac),
        }));
    }
    out
}

fn reads(cmds: &[RecoveryCommand]) -> Vec<(String, u64)> {
    cmds.iter()
        .filter_map(|c| match c {
            RecoveryCommand::Read { bookie, entry } => Some((bookie.to_string(), entry.0)),
            _ => None,
        })
        .collect()
}

fn adds(cmds: &[RecoveryCommand]) -> Vec<(String, u64)> {
    cmds.iter()
        .filter_map(|c| match c {
            RecoveryCommand::Send { bookie, add } => {
                assert!(add.recovery, "recovery adds carry the recovery flag");
                assert_eq!(add.epoch, Epoch(2), "at the recovery's epoch");
                Some((bookie.to_string(), add.entry.0))
            }
            _ => None,
        })
        .collect()
}

fn found(r: &mut RecoveryCore, bookie: &str, e: u64) -> Vec<RecoveryCommand> {
    r.handle(RecoveryEvent::ReadOk {
        bookie: b(bookie),
        entry: EntryId(e),
        data: data(e),
    })
}

fn missing(r: &mut RecoveryCore, bookie: &str, e: u64, f: ReadFailure) -> Vec<RecoveryCommand> {
    r.handle(RecoveryEvent::ReadFailed {
        bookie: b(bookie),
        entry: EntryId(e),
        failure: f,
    })
}

fn acked(r: &mut RecoveryCore, bookie: &str, e: u64) -> Vec<RecoveryCommand> {
    r.handle(RecoveryEvent::AddAcked {
        bookie: b(bookie),
        entry: EntryId(e),
    })
}

#[test]
fn recovery_reads_from_the_lac_keeps_what_exists_and_seals_before_the_first_absent_entry() {
    let (mut r, c) = RecoveryCore::start(meta(3, 3, 2), 1 << 20);
    assert_eq!(
        c,
        ["a", "b", "c"].map(|n| RecoveryCommand::Fence { bookie: b(n) })
    );
    // Two fenced bookies of three cover every write set at Qw − Qa + 1 = 2.
    let mut c = r.handle(RecoveryEvent::FenceOk {
        bookie: b("a"),
        info: info(Some(3)),
    });
    assert!(c.is_empty());
    c = r.handle(RecoveryEvent::FenceOk {
        bookie: b("c"),
        info: info(Some(4)),
    });
    // Reading starts at the highest reported LAC (4): it exists, and carries the length.
    assert_eq!(
        reads(&c),
        [("b".into(), 4), ("c".into(), 4), ("a".into(), 4)]
    );
    c = found(&mut r, "c", 4);
    assert_eq!(
        adds(&c),
        [("b".into(), 4), ("c".into(), 4), ("a".into(), 4)]
    );
    assert_eq!(
        reads(&c),
        [("c".into(), 5), ("a".into(), 5), ("b".into(), 5)]
    );
    // Entry 5 was beyond the LAC, but one replica has it: it may have been acknowledged.
    missing(&mut r, "c", 5, ReadFailure::NoSuchEntry);
    c = found(&mut r, "a", 5);
    assert_eq!(reads(&c).len(), 3);
    // Entry 6: two replicas of three say no, so at most one has it: never acknowledged.
    assert!(missing(&mut r, "a", 6, ReadFailure::NoSuchEntry).is_empty());
    assert!(
        missing(&mut r, "b", 6, ReadFailure::NoSuchEntry).is_empty(),
        "waits for re-adds"
    );
    acked(&mut r, "a", 4);
    acked(&mut r, "b", 4);
    acked(&mut r, "a", 5);
    let c = acked(&mut r, "c", 5);
    assert_eq!(
        c,
        [RecoveryCommand::CloseLedger {
            last_entry: Some(EntryId(5)),
            length: 60
        }]
    );
    let mut closed = r.metadata().clone();
    closed.state = LedgerState::Closed;
    closed.last_entry = Some(EntryId(5));
    closed.length = 60;
    let c = r.handle(RecoveryEvent::Closed {
        metadata: closed.clone(),
    });
    assert_eq!(c, [RecoveryCommand::Finished(Ok(closed))]);
    assert!(r.is_finished());
}

#[test]
fn an_empty_ledger_is_sealed_empty() {
    let (mut r, _) = RecoveryCore::start(meta(3, 3, 2), 1 << 20);
    let c = fence_all(&mut r, &["a", "b", "c"], None);
    assert_eq!(
        reads(&c),
        [("a".into(), 0), ("b".into(), 0), ("c".into(), 0)]
    );
    missing(&mut r, "a", 0, ReadFailure::NoSuchEntry);
    let c = missing(&mut r, "c", 0, ReadFailure::NoSuchEntry);
    assert_eq!(
        c,
        [RecoveryCommand::CloseLedger {
            last_entry: None,
            length: 0
        }]
    );
}

#[test]
fn unknown_answers_never_end_the_ledger() {
    let (mut r, _) = RecoveryCore::start(meta(3, 3, 2), 1 << 20);
    fence_all(&mut r, &["a", "b", "c"], Some(0));
    found(&mut r, "a", 0);
    missing(&mut r, "a", 1, ReadFailure::NoSuchEntry);
    missing(
        &mut r,
        "b",
        1,
        ReadFailure::Unknown("bookie is damaged".into()),
    );
    let c = missing(&mut r, "c", 1, ReadFailure::Unknown("timed out".into()));
    assert!(
        matches!(
            &c[..],
            [RecoveryCommand::Finished(Err(RecoveryError::Unavailable(
                _
            )))]
        ),
        "{c:?}"
    );
}

#[test]
fn a_replica_returning_bad_bytes_is_an_unknown_answer() {
    let (mut r, _) = RecoveryCore::start(meta(3, 3, 2), 1 << 20);
    fence_all(&mut r, &["a", "b", "c"], Some(0));
    // Entry 1's bytes where entry 0 was asked for.
    let c = r.handle(RecoveryEvent::ReadOk {
        bookie: b("a"),
        entry: EntryId(0),
        data: data(1),
    });
    assert!(adds(&c).is_empty());
    missing(&mut r, "b", 0, ReadFailure::NoSuchEntry);
    let c = missing(&mut r, "c", 0, ReadFailure::Unknown("x".into()));
    assert!(matches!(
        &c[..],
        [RecoveryCommand::Finished(Err(RecoveryError::Unavailable(
            _
        )))]
    ));
}

#[test]
fn fencing_must_cover_every_write_set() {
    // 5/3/2: each write set needs 2 fenced bookies. a, b fenced leave the write set {c, d, e}
    // uncovered.
    let (mut r, _) = RecoveryCore::start(meta(5, 3, 2), 1 << 20);
    assert!(fence_all(&mut r, &["a", "b"], Some(7)).is_empty());
    assert!(
        fence_all(&mut r, &["c"], Some(7)).is_empty(),
        "{{d, e, a}} has only a"
    );
    let c = fence_all(&mut r, &["d"], Some(7));
    assert_eq!(reads(&c).len(), 3, "now every write set has two");
    // And when too many bookies cannot be fenced, recovery says so.
    let (mut r, _) = RecoveryCore::start(meta(5, 3, 2), 1 << 20);
    let f = |n: &str| RecoveryEvent::FenceFailed {
        bookie: b(n),
        failure: ReadFailure::Unknown("connection refused".into()),
    };
    assert!(r.handle(f("a")).is_empty());
    let c = r.handle(f("b"));
    assert!(matches!(
        &c[..],
        [RecoveryCommand::Finished(Err(RecoveryError::Unavailable(
            _
        )))]
    ));
}

#[test]
fn a_higher_epoch_anywhere_ends_this_recovery() {
    // During fencing.
    let (mut r, _) = RecoveryCore::start(meta(3, 3, 2), 1 << 20);
    let c = r.handle(RecoveryEvent::FenceFailed {
        bookie: b("a"),
        failure: ReadFailure::Fenced,
    });
    assert_eq!(c, [RecoveryCommand::Finished(Err(RecoveryError::Fenced))]);
    // During reading: a second recovery fenced a bookie at a higher epoch.
    let (mut r, _) = RecoveryCore::start(meta(3, 3, 2), 1 << 20);
    fence_all(&mut r, &["a", "b", "c"], Some(2));
    let c = missing(&mut r, "b", 2, ReadFailure::Fenced);
    assert_eq!(c, [RecoveryCommand::Finished(Err(RecoveryError::Fenced))]);
    assert!(found(&mut r, "a", 2).is_empty(), "nothing after the end");
    // During re-replication.
    let (mut r, _) = RecoveryCore::start(meta(3, 3, 2), 1 << 20);
    fence_all(&mut r, &["a", "b", "c"], Some(2));
    found(&mut r, "a", 2);
    let c = r.handle(RecoveryEvent::AddFailed {
        bookie: b("b"),
        entry: EntryId(2),
        fenced: true,
    });
    assert_eq!(c, [RecoveryCommand::Finished(Err(RecoveryError::Fenced))]);
}

#[test]
fn a_bookie_dying_mid_recovery_is_tolerated_up_to_the_ack_quorum() {
    let (mut r, _) = RecoveryCore::start(meta(3, 3, 2), 1 << 20);
    fence_all(&mut r, &["a", "b", "c"], Some(0));
    found(&mut r, "a", 0);
    missing(&mut r, "a", 1, ReadFailure::NoSuchEntry);
    missing(&mut r, "b", 1, ReadFailure::NoSuchEntry);
    // c dies: its re-add fails; a and b still make the ack quorum.
    assert!(
        r.handle(RecoveryEvent::AddFailed {
            bookie: b("c"),
            entry: EntryId(0),
            fenced: false
        })
        .is_empty()
    );
    acked(&mut r, "a", 0);
    let c = acked(&mut r, "b", 0);
    assert_eq!(
        c,
        [RecoveryCommand::CloseLedger {
            last_entry: Some(EntryId(0)),
            length: 10
        }]
    );
    // Two dying is one too many.
    let (mut r, _) = RecoveryCore::start(meta(3, 3, 2), 1 << 20);
    fence_all(&mut r, &["a", "b", "c"], Some(0));
    found(&mut r, "a", 0);
    let fail = |n: &str| RecoveryEvent::AddFailed {
        bookie: b(n),
        entry: EntryId(0),
        fenced: false,
    };
    assert!(r.handle(fail("c")).is_empty());
    let c = r.handle(fail("b"));
    assert!(matches!(
        &c[..],
        [RecoveryCommand::Finished(Err(RecoveryError::Unavailable(
            _
        )))]
    ));
}

#[test]
fn reading_starts_no_earlier_than_the_last_fragment() {
    // The writer replaced c by d from entry 10: everything before was acknowledged, even if
    // the bookies of the last fragment report an older LAC (or none).
    let m = meta(3, 3, 2)
        .with_replacements(EntryId(10), &[(b("c"), b("d"))])
        .unwrap();
    let (mut r, c) = RecoveryCore::start(m, 1 << 20);
    assert_eq!(c.len(), 3);
    assert!(c.contains(&RecoveryCommand::Fence { bookie: b("d") }));
    let c = fence_all(&mut r, &["a", "b", "d"], None);
    // Entry 9 (in the first fragment, on a, b, c) is read for the length, then 10 onwards.
    assert_eq!(
        reads(&c),
        [("a".into(), 9), ("b".into(), 9), ("c".into(), 9)]
    );
    let c = found(&mut r, "b", 9);
    assert_eq!(
        reads(&c),
        [("b".into(), 10), ("d".into(), 10), ("a".into(), 10)]
    );
}

#[test]
fn only_a_ledger_in_recovery_can_be_recovered() {
    let mut m = meta(3, 3, 2);
    m.state = LedgerState::Open;
    let (r, c) = RecoveryCore::start(m, 1 << 20);
    assert!(r.is_finished());
    assert!(matches!(
        &c[..],
        [RecoveryCommand::Finished(Err(RecoveryError::Inconsistent(
            _
        )))]
    ));
}
