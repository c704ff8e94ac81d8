//! The history checker of `RELIABILITY.md`, for one stream at a time.
//!
//! Clients record every operation as an [`Event`] (JSON lines in a file, or in memory): an
//! append's `invoke` and then its `ok` (with the offset it got), `fail` (definitely not
//! appended) or `info` (outcome unknown); a read's `ok` with the `(offset, payload)` pairs it
//! returned. After the faults heal, a fresh reader reads the whole stream: the final log. The
//! checker then verifies:
//!
//! | # | rule |
//! |---|---|
//! | C1 | each offset maps to one payload across all acks and reads |
//! | C2 | each payload is at most once in the final log |
//! | C3 | every ok append is in the final log at its acknowledged offset |
//! | C4 | no read returns a payload whose append failed or was never invoked |
//! | C5 | every (offset, payload) any reader saw is in the final log |
//! | C6 | the final log is dense from its start; each reader's reads are gap-free and monotonic |
//! | C7 | within one writer process, offsets follow the order the appends were issued in (a pipelined writer's acknowledgements come in that order) |
//! | C8 | segments chain (each starts where the previous ended), their epochs increase, only the last may be open, and every ok append lies below the sealed end or in the open segment |
//!
//! An `info` append may be in the final log at most once and then obeys C1/C6/C7 like an ok
//! one.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// What happened to one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// One recorded operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `append` or `read`.
    pub op: String,
    /// Which client process (or task) did it.
    pub process: String,
    #[serde(rename = "type")]
    pub outcome: Outcome,
    /// Appends: the payload's unique id.
    #[serde(default)]
    pub payload_id: Option<String>,
    /// Appends: the offset acknowledged.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Reads: what was returned, in order.
    #[serde(default)]
    pub records: Vec<(u64, String)>,
    pub t_ns: u64,
}

/// A segment as the stream describes it at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub epoch: u64,
    pub first_offset: u64,
    pub end_offset: u64,
    pub open: bool,
}

/// The stream as a fresh reader read it after the faults.
#[derive(Debug, Clone, Default)]
pub struct FinalLog {
    pub start_offset: u64,
    /// `(offset, payload_id)` in read order.
    pub records: Vec<(u64, String)>,
    pub segments: Vec<Segment>,
}

/// A broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub check: &'static str,
    pub detail: String,
}

/// What the checker saw, for reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub acked: usize,
    pub failed: usize,
    pub indeterminate: usize,
    pub indeterminate_present: usize,
    pub reads: usize,
    pub final_records: usize,
}

/// Checks `history` against `log`; returns the summary, or every violation found.
pub fn check(history: &[Event], log: &FinalLog) -> Result<Summary, Vec<Violation>> {
    let mut v = Vec::new();
    let mut bad = |check: &'static str, detail: String| v.push(Violation { check, detail });
    let mut s = Summary {
        final_records: log.records.len(),
        ..Summary::default()
    };

    // The final log, by offset and by payload.
    let mut at: BTreeMap<u64, &str> = BTreeMap::new();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (o, p) in &log.records {
        if at.insert(*o, p).is_some() {
            bad("C1", format!("the final log has offset {o} twice"));
        }
        *count.entry(p).or_default() += 1;
    }
    for (p, n) in &count {
        if *n > 1 {
            bad("C2", format!("payload {p} is {n} times in the final log"));
        }
    }
    // C6: dense from the start.
    for (expect, o) in (log.start_offset..).zip(at.keys()) {
        if *o != expect {
            bad("C6", format!("the final log jumps from {expect} to {o}"));
            break;
        }
    }

    // Appends.
    let mut invoked: HashSet<&str> = HashSet::new();
    let mut failed: HashSet<&str> = HashSet::new();
    let mut acked_at: HashMap<&str, u64> = HashMap::new();
    let mut by_offset: HashMap<u64, &str> = HashMap::new();
    let mut invoke_order: HashMap<&str, (&str, u64)> = HashMap::new();
    let mut appends: Vec<&Event> = history.iter().filter(|e| e.op == "append").collect();
    appends.sort_by_key(|e| e.t_ns);
    for e in appends {
        let Some(p) = e.payload_id.as_deref() else {
            bad(
                "history",
                format!("an append of {} has no payload id", e.process),
            );
            continue;
        };
        match e.outcome {
            Outcome::Invoke => {
                invoked.insert(p);
                invoke_order.insert(p, (e.process.as_str(), e.t_ns));
            }
            Outcome::Fail => {
                s.failed += 1;
                failed.insert(p);
            }
            Outcome::Info => {
                s.indeterminate += 1;
                if count.contains_key(p) {
                    s.indeterminate_present += 1;
                }
            }
            Outcome::Ok => {
                s.acked += 1;
                let Some(o) = e.offset else {
                    bad("history", format!("an ok append of {p} has no offset"));
                    continue;
                };
                if let Some(q) = by_offset.insert(o, p)
                    && q != p
                {
                    bad(
                        "C1",
                        format!("offset {o} was acknowledged for {q} and for {p}"),
                    );
                }
                acked_at.insert(p, o);
                match at.get(&o) {
                    Some(f) if *f == p => {}
                    Some(f) => bad("C3", format!("{p} acked at {o}, the final log has {f}")),
                    None if o < log.start_offset => {}
                    None => bad("C3", format!("{p} acked at {o} is not in the final log")),
                }
            }
        }
    }
    // C7: per writer, in the order the appends were issued, offsets increase.
    let mut issued: Vec<(&str, u64, u64, &str)> = acked_at
        .iter()
        .filter_map(|(p, o)| invoke_order.get(p).map(|(w, t)| (*w, *t, *o, *p)))
        .collect();
    issued.sort();
    for pair in issued.windows(2) {
        let ((w0, _, o0, p0), (w1, _, o1, p1)) = (pair[0], pair[1]);
        if w0 == w1 && o1 <= o0 {
            bad(
                "C7",
                format!("{w0} issued {p0} before {p1}, but they got offsets {o0} and {o1}"),
            );
        }
    }
    for p in &failed {
        if count.contains_key(p) {
            bad(
                "C4",
                format!("{p} failed definitely but is in the final log"),
            );
        }
    }

    // Reads.
    for e in history
        .iter()
        .filter(|e| e.op == "read" && e.outcome == Outcome::Ok)
    {
        s.reads += 1;
        let mut prev: Option<u64> = None;
        for (o, p) in &e.records {
            if !invoked.contains(p.as_str()) {
                bad(
                    "C4",
                    format!("{} read {p} at {o}, which was never appended", e.process),
                );
            }
            if failed.contains(p.as_str()) {
                bad(
                    "C4",
                    format!("{} read {p} at {o}, whose append failed", e.process),
                );
            }
            match at.get(o) {
                Some(f) if f == p => {}
                None if *o < log.start_offset => {}
                other => bad(
                    "C5",
                    format!("{} read {p} at {o}; the final log has {other:?}", e.process),
                ),
            }
            if let Some(q) = by_offset.get(o)
                && q != p
            {
                bad(
                    "C1",
                    format!("{} read {p} at {o}, acknowledged for {q}", e.process),
                );
            }
            if let Some(pr) = prev
                && *o != pr + 1
            {
                bad("C6", format!("{} read {o} right after {pr}", e.process));
            }
            prev = Some(*o);
        }
    }

    // C8: segment chaining, epochs, the sealed end.
    let segs = &log.segments;
    for w in segs.windows(2) {
        if w[1].first_offset != w[0].end_offset {
            bad(
                "C8",
                format!(
                    "a segment starts at {} after one ending at {}",
                    w[1].first_offset, w[0].end_offset
                ),
            );
        }
        if w[1].epoch < w[0].epoch {
            bad(
                "C8",
                format!("segment epochs go down: {} then {}", w[0].epoch, w[1].epoch),
            );
        }
        if w[0].open {
            bad("C8", "an open segment is not the last".into());
        }
    }
    let sealed_end = segs.iter().filter(|g| !g.open).map(|g| g.end_offset).max();
    let open_from = segs.iter().find(|g| g.open).map(|g| g.first_offset);
    for (p, o) in &acked_at {
        let below_sealed = sealed_end.is_some_and(|end| *o < end);
        let in_open = open_from.is_some_and(|first| *o >= first);
        if !segs.is_empty() && !below_sealed && !in_open && *o >= log.start_offset {
            bad(
                "C8",
                format!("{p} acked at {o} is beyond the sealed end {sealed_end:?}"),
            );
        }
    }

    if v.is_empty() { Ok(s) } else { Err(v) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(process: &str, p: &str, outcome: Outcome, offset: Option<u64>, t: u64) -> Event {
        Event {
            op: "append".into(),
            process: process.into(),
            outcome,
            payload_id: Some(p.into()),
            offset,
            records: Vec::new(),
            t_ns: t,
        }
    }

    fn read(process: &str, records: &[(u64, &str)], t: u64) -> Event {
        Event {
            op: "read".into(),
            process: process.into(),
            outcome: Outcome::Ok,
            payload_id: None,
            offset: None,
            records: records.iter().map(|(o, p)| (*o, p.to_string())).collect(),
            t_ns: t,
        }
    }

    fn log(records: &[(u64, &str)]) -> FinalLog {
        FinalLog {
            start_offset: 0,
            records: records.iter().map(|(o, p)| (*o, p.to_string())).collect(),
            segments: vec![Segment {
                epoch: 1,
                first_offset: 0,
                end_offset: records.len() as u64,
                open: false,
            }],
        }
    }

    fn good() -> Vec<Event> {
        vec![
            append("w", "a", Outcome::Invoke, None, 1),
            append("w", "b", Outcome::Invoke, None, 2),
            append("w", "c", Outcome::Invoke, None, 3),
            append("w", "a", Outcome::Ok, Some(0), 4),
            append("w", "b", Outcome::Info, None, 5),
            append("w", "c", Outcome::Ok, Some(2), 6),
            read("r", &[(0, "a"), (1, "b")], 7),
        ]
    }

    #[test]
    fn a_good_history_passes() {
        let s = check(&good(), &log(&[(0, "a"), (1, "b"), (2, "c")])).unwrap();
        assert_eq!(
            (s.acked, s.indeterminate, s.indeterminate_present),
            (2, 1, 1)
        );
    }

    fn fails_with(h: &[Event], l: &FinalLog, rule: &str) {
        let v = check(h, l).expect_err("must fail");
        assert!(v.iter().any(|x| x.check == rule), "{rule} not in {v:?}");
    }

    #[test]
    fn each_rule_catches_its_bug() {
        // C3: an acknowledged record lost.
        fails_with(&good(), &log(&[(0, "a"), (1, "b")]), "C3");
        // C1/C3: an acknowledged record moved.
        fails_with(&good(), &log(&[(0, "b"), (1, "a"), (2, "c")]), "C3");
        // C2: a duplicate.
        fails_with(
            &good(),
            &log(&[(0, "a"), (1, "b"), (2, "c"), (3, "a")]),
            "C2",
        );
        // C6: a hole.
        fails_with(&good(), &log(&[(0, "a"), (2, "c")]), "C6");
        // C4: a failed append is present.
        let mut h = good();
        h.push(append("w", "d", Outcome::Invoke, None, 8));
        h.push(append("w", "d", Outcome::Fail, None, 9));
        fails_with(&h, &log(&[(0, "a"), (1, "b"), (2, "c"), (3, "d")]), "C4");
        // C4: a read of something never appended.
        let mut h = good();
        h.push(read("r", &[(2, "zz")], 10));
        fails_with(&h, &log(&[(0, "a"), (1, "b"), (2, "c")]), "C4");
        // C5: a read the final log does not have.
        let mut h = good();
        h.push(append("w", "x", Outcome::Invoke, None, 8));
        h.push(append("w", "x", Outcome::Info, None, 9));
        h.push(read("r2", &[(3, "x")], 10));
        fails_with(&h, &log(&[(0, "a"), (1, "b"), (2, "c")]), "C5");
        // C6: a reader skipping.
        let mut h = good();
        h.push(read("r3", &[(0, "a"), (2, "c")], 10));
        fails_with(&h, &log(&[(0, "a"), (1, "b"), (2, "c")]), "C6");
        // C7: a later append of one writer got a lower offset.
        let h = vec![
            append("w", "a", Outcome::Invoke, None, 1),
            append("w", "b", Outcome::Invoke, None, 2),
            append("w", "b", Outcome::Ok, Some(0), 3),
            append("w", "a", Outcome::Ok, Some(1), 4),
        ];
        fails_with(&h, &log(&[(0, "b"), (1, "a")]), "C7");
        // Acknowledgements recorded out of order are fine when the offsets follow the issue
        // order.
        let h = vec![
            append("w", "a", Outcome::Invoke, None, 1),
            append("w", "b", Outcome::Invoke, None, 2),
            append("w", "b", Outcome::Ok, Some(1), 3),
            append("w", "a", Outcome::Ok, Some(0), 4),
        ];
        check(&h, &log(&[(0, "a"), (1, "b")])).unwrap();
        // C8: segments that do not chain, and an ack beyond the sealed end.
        let mut l = log(&[(0, "a"), (1, "b"), (2, "c")]);
        l.segments = vec![
            Segment {
                epoch: 2,
                first_offset: 0,
                end_offset: 1,
                open: false,
            },
            Segment {
                epoch: 1,
                first_offset: 2,
                end_offset: 2,
                open: false,
            },
        ];
        fails_with(&good(), &l, "C8");
    }
}
