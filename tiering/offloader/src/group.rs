//! How an offload splits a stream's sealed segments into objects: small adjacent segments share
//! one (compaction), and an object an interrupted attempt left uncommitted is grouped again as
//! it was, so that the retry reuses it.

use dlog_log::meta::SegmentRecord;

/// Splits consecutive segments into objects: small ones together until `compact_below`.
/// A run of segments that exactly spans an uncommitted object (`adopt`) is one group
/// whatever its size: the retry of an interrupted offload then finds that object under
/// the same key and uses it, instead of grouping differently (more segments sealed since)
/// and leaving a second object over the same records in the bucket.
pub(crate) fn groups(
    segs: Vec<SegmentRecord>,
    adopt: &[(u64, u64)],
    compact_below: u64,
) -> Vec<Vec<SegmentRecord>> {
    let spans = |first: u64| {
        adopt.iter().find(|(f, end)| {
            *f == first
                && segs.iter().any(|s| s.end_offset == *end)
                && segs
                    .iter()
                    .filter(|s| s.first_offset >= *f && s.end_offset <= *end)
                    .map(|s| s.end_offset - s.first_offset)
                    .sum::<u64>()
                    == *end - *f
        })
    };
    let mut out: Vec<Vec<SegmentRecord>> = Vec::new();
    let mut bytes = 0u64;
    // The end of the adopted object the last group must reach, if it is one.
    let mut adopting: Option<u64> = None;
    for seg in segs.iter().cloned() {
        if let Some(end) = adopting {
            if seg.first_offset < end {
                out.last_mut().expect("an adopted group is open").push(seg);
                continue;
            }
            adopting = None;
            bytes = u64::MAX; // nothing joins an adopted object
        }
        if let Some((_, end)) = spans(seg.first_offset) {
            adopting = (seg.end_offset < *end).then_some(*end);
            bytes = u64::MAX;
            out.push(vec![seg]);
            continue;
        }
        let fits = out.last().is_some_and(|g| {
            g.last().is_some_and(|l| l.end_offset == seg.first_offset)
                && bytes.saturating_add(seg.bytes) < compact_below
        });
        if fits {
            bytes += seg.bytes;
            out.last_mut().expect("checked above").push(seg);
        } else {
            bytes = seg.bytes;
            out.push(vec![seg]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use dlog_api::stream::SegmentState;
    use dlog_log::meta::SegmentRecord;

    /// Sealed segments of 10 records and `bytes` each, from offset 0.
    fn segs(bytes: &[u64]) -> Vec<SegmentRecord> {
        bytes
            .iter()
            .enumerate()
            .map(|(i, b)| SegmentRecord {
                seq: i as u64,
                ledger: i as u64,
                epoch: 1,
                state: SegmentState::Sealed,
                first_offset: i as u64 * 10,
                end_offset: i as u64 * 10 + 10,
                bytes: *b,
                created_ms: 0,
                sealed_ms: Some(0),
                max_timestamp_ms: None,
                max_txid: None,
                first_timestamp_ms: None,
                min_txid: None,
                object: None,
                local_deleted_ms: None,
            })
            .collect()
    }

    fn ranges(g: &[Vec<SegmentRecord>]) -> Vec<(u64, u64)> {
        g.iter()
            .map(|g| (g[0].first_offset, g[g.len() - 1].end_offset))
            .collect()
    }

    #[test]
    fn small_segments_are_grouped_until_the_limit() {
        let g = super::groups(segs(&[4, 4, 4, 4, 9, 1]), &[], 10);
        assert_eq!(ranges(&g), [(0, 20), (20, 40), (40, 50), (50, 60)]);
        assert_eq!(
            ranges(&super::groups(segs(&[4, 4]), &[], 0)),
            [(0, 10), (10, 20)]
        );
    }

    #[test]
    fn an_uncommitted_object_is_adopted_whatever_the_grouping_would_be() {
        // An interrupted attempt uploaded [10, 30) when segments 1 and 2 were the tail; segment
        // 3 was sealed since and would now join them.
        let g = super::groups(segs(&[9, 4, 4, 4]), &[(10, 30)], 100);
        assert_eq!(ranges(&g), [(0, 10), (10, 30), (30, 40)]);
        // An object larger than the limit is adopted too; one that no run of segments spans
        // exactly (retention took part of it, or it ends inside a segment) is ignored.
        let g = super::groups(segs(&[4, 4, 4]), &[(0, 30)], 5);
        assert_eq!(ranges(&g), [(0, 30)]);
        let g = super::groups(segs(&[4, 4, 4]), &[(0, 25), (5, 20)], 100);
        assert_eq!(ranges(&g), [(0, 30)]);
    }
}
