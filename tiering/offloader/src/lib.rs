//! `dlog-offloader`: moves sealed segments from the bookies to the object tier.
//!
//! The offload of one sealed segment, each step idempotent so that a crash at any point is
//! repaired by running the offload again:
//!
//! 1. read the segment's ledger from the bookies and write its records as one Parquet object
//!    (`dlog_objects::segment`), computing the records' checksum on the way;
//! 2. upload it with a conditional create at its deterministic key (a key that exists already
//!    is read back instead: an earlier attempt uploaded it);
//! 3. read the object back whole and verify it: dense offsets, the segment's exact range, the
//!    checksum in its metadata and the one computed from the bookies' copy;
//! 4. commit the stream's manifest with the object appended (a conditional create of the next
//!    version; objects stay contiguous, so segments are offloaded in order);
//! 5. commit the segment's metadata with the object (compare-and-set): from now on readers go
//!    to the object;
//! 6. later, once the grace period has passed for readers still on the ledger, delete the
//!    bookies' copy ([`Offloader::reclaim`]).
//!
//! Nothing is deleted before its object is verified and committed to both the manifest and
//! the segment metadata. Fail points (feature `testing`) sit after each step:
//! `offload::uploaded`, `offload::verified`, `offload::manifest_committed`,
//! `offload::metadata_committed`, `offload::before_reclaim`, `offload::trimmed_manifest`.
//!
//! [`restore`] rebuilds streams' metadata from a bucket's manifests (`dlogd restore`).

/// A fail point: with the `testing` feature, `FAILPOINTS` or `fail::cfg` can make it return an
/// error here, as a crash at this step would leave things.
macro_rules! step {
    ($name:literal) => {
        fail::fail_point!($name, |_| Err(LogError::Unavailable(format!(
            "fail point {}",
            $name
        ))));
    };
}

mod group;
mod offload;
mod reclaim;
mod restore;
mod scrub;

pub use offload::{OffloadOptions, Offloaded, Offloader};
pub use restore::{Restored, restore};
pub use scrub::{ScrubReport, scrub};
