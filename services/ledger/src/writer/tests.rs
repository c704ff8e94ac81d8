//! The writer core's commands for the hard interleavings, and a randomized check of its
//! invariants over many seeded runs.

use super::*;
use crate::metadata::Quorum;
use dlog_api::Epoch;
use std::collections::{BTreeSet, HashMap};

fn b(s: &str) -> BookieId {
    BookieId::new(s).unwrap()
}

fn writer(e: u8, w: u8, a: u8) -> WriterCore {
    let names = ["a", "b", "c", "d", "e", "f", "g"];
    let ens = names[..usize::from(e)].iter().map(|n| b(n)).collect();
    let meta =
        LedgerMetadata::new(LedgerId(9), Quorum::new(e, w, a).unwrap(), Epoch(4), ens, 0).unwrap();
    WriterCore::new(meta, 1 << 20)
}

fn append(w: &mut WriterCore, token: Token) -> Vec<WriterCommand> {
    w.handle(WriterEvent::Append {
        token,
        payload: Bytes::from(format!("payload {token}")),
    })
}

fn ack(w: &mut WriterCore, bookie: &str, entry: u64) -> Vec<WriterCommand> {
    w.handle(WriterEvent::AddAcked {
        bookie: b(bookie),
        entry: EntryId(entry),
    })
}

fn fail(w: &mut WriterCore, bookie: &str, entry: u64, failure: AddFailure) -> Vec<WriterCommand> {
    w.handle(WriterEvent::AddFailed {
        bookie: b(bookie),
        entry: EntryId(entry),
        failure,
    })
}

fn sends(cmds: &[WriterCommand]) -> Vec<(String, u64, Option<u64>)> {
    cmds.iter()
        .filter_map(|c| match c {
            WriterCommand::Send { bookie, add } => {
                Some((bookie.to_string(), add.entry.0, add.lac.map(|l| l.0)))
            }
            _ => None,
        })
        .collect()
}

fn acked(cmds: &[WriterCommand]) -> Vec<(Token, u64)> {
    cmds.iter()
        .filter_map(|c| match c {
            WriterCommand::Acked { token, entry } => Some((*token, entry.0)),
            _ => None,
        })
        .collect()
}

fn unavailable() -> AddFailure {
    AddFailure::Unavailable("timed out".into())
}

#[test]
fn entries_stripe_and_are_acknowledged_in_order_at_the_ack_quorum() {
    let mut w = writer(3, 2, 2);
    let c = append(&mut w, 100);
    assert_eq!(sends(&c), [("a".into(), 0, None), ("b".into(), 0, None)]);
    let c = append(&mut w, 101);
    assert_eq!(sends(&c), [("b".into(), 1, None), ("c".into(), 1, None)]);
    // Entry 1 reaches its quorum first: held back until entry 0 has too.
    assert!(acked(&ack(&mut w, "b", 1)).is_empty());
    assert!(acked(&ack(&mut w, "c", 1)).is_empty());
    assert!(acked(&ack(&mut w, "a", 0)).is_empty());
    assert_eq!(acked(&ack(&mut w, "b", 0)), [(100, 0), (101, 1)]);
    assert_eq!(w.lac(), Some(EntryId(1)));
    // The LAC rides on the next add.
    let c = append(&mut w, 102);
    assert_eq!(
        sends(&c),
        [("c".into(), 2, Some(1)), ("a".into(), 2, Some(1))]
    );
    // Duplicate and stale acks change nothing.
    assert!(ack(&mut w, "b", 0).is_empty());
    assert!(ack(&mut w, "a", 7).is_empty());
}

#[test]
fn idle_writer_tells_each_bookie_the_lac_once() {
    let mut w = writer(3, 3, 2);
    append(&mut w, 1);
    ack(&mut w, "a", 0);
    ack(&mut w, "b", 0);
    let c = w.handle(WriterEvent::Idle);
    let lacs: Vec<_> = c
        .iter()
        .map(|c| match c {
            WriterCommand::WriteLac { bookie, lac } => (bookie.to_string(), lac.0),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(lacs, [("a".into(), 0), ("b".into(), 0), ("c".into(), 0)]);
    assert!(w.handle(WriterEvent::Idle).is_empty());
}

#[test]
fn a_failed_bookie_is_replaced_from_the_first_unacknowledged_entry() {
    let mut w = writer(3, 3, 2);
    for t in 0..3 {
        append(&mut w, t);
    }
    ack(&mut w, "a", 0);
    assert_eq!(acked(&ack(&mut w, "b", 0)), [(0, 0)]);
    // c times out on entry 1: replace it from entry 1 on.
    let c = fail(&mut w, "c", 1, unavailable());
    assert_eq!(
        c,
        [WriterCommand::ReplaceBookies {
            first_entry: EntryId(1),
            failed: vec![b("c")]
        }]
    );
    // While the change is in flight: new entries go to the healthy bookies only, and nothing
    // is acknowledged even at quorum (the new fragment must keep every entry from 1 on).
    let c = append(&mut w, 3);
    assert_eq!(
        sends(&c),
        [("a".into(), 3, Some(0)), ("b".into(), 3, Some(0))]
    );
    ack(&mut w, "a", 1);
    assert!(acked(&ack(&mut w, "b", 1)).is_empty());
    // A second failure report of the same bookie does not start a second change.
    assert!(fail(&mut w, "c", 2, unavailable()).is_empty());
    let meta = w
        .metadata()
        .with_replacements(EntryId(1), &[(b("c"), b("d"))])
        .unwrap();
    let c = w.handle(WriterEvent::EnsembleChanged { metadata: meta });
    // Every pending entry goes to the replacement; entry 1 is acknowledged (a and b have it).
    let s = sends(&c);
    assert_eq!(
        s.iter()
            .map(|(bk, e, _)| (bk.as_str(), *e))
            .collect::<Vec<_>>(),
        [("d", 1), ("d", 2), ("d", 3)]
    );
    assert_eq!(acked(&c), [(1, 1)]);
    // A slow c answering now does not count for the new fragment.
    ack(&mut w, "a", 2);
    assert!(acked(&ack(&mut w, "c", 2)).is_empty());
    assert_eq!(acked(&ack(&mut w, "d", 2)), [(2, 2)]);
    assert_eq!(w.metadata().fragments.len(), 2);
    // And failures of a replaced bookie are ignored.
    assert!(fail(&mut w, "c", 3, unavailable()).is_empty());
}

#[test]
fn a_bookie_failing_during_a_change_gets_its_own_change_after() {
    let mut w = writer(3, 3, 2);
    append(&mut w, 0);
    fail(&mut w, "c", 0, unavailable());
    assert!(fail(&mut w, "b", 0, unavailable()).is_empty());
    let meta = w
        .metadata()
        .with_replacements(EntryId(0), &[(b("c"), b("d"))])
        .unwrap();
    let c = w.handle(WriterEvent::EnsembleChanged { metadata: meta });
    assert_eq!(sends(&c), [("d".into(), 0, None)]);
    assert_eq!(
        c.last().unwrap(),
        &WriterCommand::ReplaceBookies {
            first_entry: EntryId(0),
            failed: vec![b("b")]
        }
    );
    // Same first entry: the fragment is rewritten, not stacked.
    let meta = w
        .metadata()
        .with_replacements(EntryId(0), &[(b("b"), b("e"))])
        .unwrap();
    assert_eq!(meta.fragments.len(), 1);
    let c = w.handle(WriterEvent::EnsembleChanged { metadata: meta });
    assert_eq!(sends(&c), [("e".into(), 0, None)]);
    ack(&mut w, "d", 0);
    assert!(acked(&ack(&mut w, "b", 0)).is_empty(), "b was replaced");
    assert_eq!(acked(&ack(&mut w, "e", 0)), [(0, 0)]);
}

#[test]
fn a_fence_fails_everything_pending_and_everything_after() {
    let mut w = writer(3, 3, 2);
    for t in 0..3 {
        append(&mut w, t);
    }
    ack(&mut w, "a", 0);
    ack(&mut w, "b", 0);
    let c = fail(&mut w, "a", 1, AddFailure::Fenced);
    assert_eq!(
        c,
        [
            WriterCommand::Failed {
                token: 1,
                error: WriteError::Fenced
            },
            WriterCommand::Failed {
                token: 2,
                error: WriteError::Fenced
            },
            WriterCommand::Finished(Err(WriteError::Fenced)),
        ]
    );
    assert!(w.is_finished());
    // Late acks change nothing; appends are refused with the reason.
    assert!(ack(&mut w, "b", 1).is_empty());
    assert_eq!(
        append(&mut w, 9),
        [WriterCommand::Failed {
            token: 9,
            error: WriteError::Fenced
        }]
    );
    assert_eq!(w.lac(), Some(EntryId(0)));
}

#[test]
fn an_add_the_bookie_rejects_stops_the_writer_instead_of_replacing_bookies() {
    let mut w = writer(3, 3, 2);
    append(&mut w, 0);
    let c = fail(
        &mut w,
        "a",
        0,
        AddFailure::Rejected("entry too large".into()),
    );
    assert!(
        matches!(
            &c[..],
            [
                WriterCommand::Failed {
                    token: 0,
                    error: WriteError::Invalid(_)
                },
                WriterCommand::Finished(Err(WriteError::Invalid(_))),
            ]
        ),
        "{c:?}"
    );
}

#[test]
fn a_failed_ensemble_change_fails_pending_entries() {
    let mut w = writer(3, 3, 2);
    append(&mut w, 0);
    fail(&mut w, "a", 0, unavailable());
    let err = WriteError::Unavailable("no writable bookie to replace a".into());
    let c = w.handle(WriterEvent::EnsembleChangeFailed { error: err.clone() });
    assert_eq!(
        c,
        [
            WriterCommand::Failed {
                token: 0,
                error: err.clone()
            },
            WriterCommand::Finished(Err(err)),
        ]
    );
}

#[test]
fn close_waits_for_pending_entries_then_seals_at_the_lac() {
    let mut w = writer(3, 3, 2);
    append(&mut w, 0);
    append(&mut w, 1);
    assert!(w.handle(WriterEvent::Close).is_empty());
    assert_eq!(
        append(&mut w, 2),
        [WriterCommand::Failed {
            token: 2,
            error: WriteError::Closed
        }]
    );
    ack(&mut w, "a", 0);
    ack(&mut w, "b", 0);
    ack(&mut w, "b", 1);
    let c = ack(&mut w, "c", 1);
    let len = "payload 0".len() as u64 + "payload 1".len() as u64;
    assert_eq!(
        c,
        [
            WriterCommand::Acked {
                token: 1,
                entry: EntryId(1)
            },
            WriterCommand::CloseLedger {
                last_entry: Some(EntryId(1)),
                length: len
            },
        ]
    );
    let mut closed = w.metadata().clone();
    closed.state = LedgerState::Closed;
    closed.last_entry = Some(EntryId(1));
    closed.length = len;
    let c = w.handle(WriterEvent::Closed {
        metadata: closed.clone(),
    });
    assert_eq!(c, [WriterCommand::Finished(Ok(closed))]);
}

#[test]
fn a_failure_reported_after_the_close_went_out_changes_nothing() {
    let mut w = writer(3, 3, 2);
    append(&mut w, 0);
    ack(&mut w, "a", 0);
    ack(&mut w, "b", 0);
    assert!(matches!(
        &w.handle(WriterEvent::Close)[..],
        [WriterCommand::CloseLedger { .. }]
    ));
    assert!(fail(&mut w, "c", 0, unavailable()).is_empty());
}

#[test]
fn closing_an_empty_ledger_seals_it_empty() {
    let mut w = writer(3, 3, 2);
    assert_eq!(
        w.handle(WriterEvent::Close),
        [WriterCommand::CloseLedger {
            last_entry: None,
            length: 0
        }]
    );
}

#[test]
fn oversized_appends_are_refused_without_using_an_entry_id() {
    let meta = writer(3, 3, 2).metadata().clone();
    let mut w = WriterCore::new(meta, 8);
    let c = w.handle(WriterEvent::Append {
        token: 1,
        payload: Bytes::from(vec![0; 9]),
    });
    assert!(matches!(
        &c[..],
        [WriterCommand::Failed {
            token: 1,
            error: WriteError::Invalid(_)
        }]
    ));
    let c = w.handle(WriterEvent::Append {
        token: 2,
        payload: Bytes::from(vec![0; 8]),
    });
    assert_eq!(sends(&c)[0].1, 0);
}

/// Random interleavings of acks, failures, slow bookies and ensemble changes, checked against
/// the invariants: acknowledgements are dense and in order, and every acknowledged entry is held
/// by at least Qa bookies of its write set in the writer's final metadata.
#[test]
fn random_interleavings_keep_the_invariants() {
    for seed in 0..500u64 {
        run_random(seed);
    }
}

fn run_random(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let (e, wq, aq) = [(3, 3, 2), (3, 2, 2), (5, 3, 2), (4, 3, 3), (2, 2, 1)][rng.usize(..5)];
    let mut w = writer(e, wq, aq);
    let mut spare = 0u32;
    // Adds in flight: (bookie, entry). Bookies that hold each entry.
    let mut inflight: Vec<(BookieId, EntryId)> = Vec::new();
    let mut stored: HashMap<EntryId, BTreeSet<BookieId>> = HashMap::new();
    let mut change: Option<(EntryId, Vec<BookieId>)> = None;
    let mut acks: Vec<u64> = Vec::new();
    let mut token = 0;
    let apply = |cmds: Vec<WriterCommand>,
                 inflight: &mut Vec<(BookieId, EntryId)>,
                 change: &mut Option<(EntryId, Vec<BookieId>)>,
                 acks: &mut Vec<u64>| {
        for c in cmds {
            match c {
                WriterCommand::Send { bookie, add } => inflight.push((bookie, add.entry)),
                WriterCommand::Acked { entry, .. } => acks.push(entry.0),
                WriterCommand::ReplaceBookies {
                    first_entry,
                    failed,
                } => {
                    assert!(change.is_none(), "seed {seed}: two changes at once");
                    *change = Some((first_entry, failed));
                }
                WriterCommand::Finished(r) => panic!("seed {seed}: finished {r:?}"),
                WriterCommand::Failed { error, .. } => panic!("seed {seed}: failed {error}"),
                WriterCommand::WriteLac { .. } | WriterCommand::CloseLedger { .. } => {}
            }
        }
    };
    for _ in 0..400 {
        match rng.u32(..10) {
            0..=2 => {
                token += 1;
                let c = w.handle(WriterEvent::Append {
                    token,
                    payload: Bytes::from_static(b"x"),
                });
                apply(c, &mut inflight, &mut change, &mut acks);
            }
            3..=7 if !inflight.is_empty() => {
                let (bk, en) = inflight.swap_remove(rng.usize(..inflight.len()));
                let c = if rng.u32(..30) == 0 {
                    w.handle(WriterEvent::AddFailed {
                        bookie: bk,
                        entry: en,
                        failure: unavailable(),
                    })
                } else {
                    stored.entry(en).or_default().insert(bk.clone());
                    w.handle(WriterEvent::AddAcked {
                        bookie: bk,
                        entry: en,
                    })
                };
                apply(c, &mut inflight, &mut change, &mut acks);
            }
            8 if change.is_some() => {
                let (first, failed) = change.take().unwrap();
                let pairs: Vec<_> = failed
                    .into_iter()
                    .map(|old| {
                        spare += 1;
                        (old, b(&format!("spare{spare}")))
                    })
                    .collect();
                let meta = w.metadata().with_replacements(first, &pairs).unwrap();
                let c = w.handle(WriterEvent::EnsembleChanged { metadata: meta });
                apply(c, &mut inflight, &mut change, &mut acks);
            }
            _ => {
                let c = w.handle(WriterEvent::Idle);
                apply(c, &mut inflight, &mut change, &mut acks);
            }
        }
    }
    assert!(
        acks.iter().enumerate().all(|(i, e)| *e == i as u64),
        "seed {seed}: {acks:?}"
    );
    let meta = w.metadata();
    for e in &acks {
        let ws = meta.write_set(EntryId(*e));
        let held = ws
            .iter()
            .filter(|b| stored[&EntryId(*e)].contains(*b))
            .count();
        assert!(
            held >= usize::from(aq),
            "seed {seed}: entry {e} acknowledged but held by {held} of its write set {ws:?}"
        );
    }
}
