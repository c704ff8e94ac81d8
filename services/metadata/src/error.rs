//! The metadata store's errors, each with the coarse [`ErrorKind`] a caller acts on.

use dlog_api::ErrorKind;

use crate::store::{LeaseId, Revision};

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// A precondition of a commit did not hold: someone else changed the key first. Re-read
    /// and decide again; nothing of the commit was applied.
    #[error("conflict on key {key:?}: expected {expected}, found {found}")]
    Conflict {
        key: String,
        expected: String,
        found: String,
    },
    /// The lease is unknown to the store: it expired, was revoked, or never existed. Keys bound
    /// to it are gone.
    #[error("lease {0} has expired or does not exist")]
    LeaseExpired(LeaseId),
    /// A watch cannot start where asked: the store no longer keeps history that old. List the
    /// prefix again and watch from the listing's revision.
    #[error(
        "watch from revision {asked} is impossible: history before revision {oldest} is compacted"
    )]
    Compacted { asked: Revision, oldest: Revision },
    /// The request is malformed (empty or oversized key, oversized value, duplicate keys …).
    #[error("invalid metadata request: {0}")]
    Invalid(String),
    /// The store cannot be reached or did not answer in time; the outcome of a write that
    /// failed this way is unknown (it may have been applied).
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
    /// Persistent state failed a check.
    #[error("metadata store corrupt: {0}")]
    Corrupt(String),
    /// The store is closed or failed in an unexpected way.
    #[error("metadata store internal error: {0}")]
    Internal(String),
}

impl MetadataError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            MetadataError::Conflict { .. } | MetadataError::Compacted { .. } => {
                ErrorKind::Unavailable
            }
            MetadataError::LeaseExpired(_) => ErrorKind::NotFound,
            MetadataError::Invalid(_) => ErrorKind::Invalid,
            MetadataError::Unavailable(_) => ErrorKind::Unavailable,
            MetadataError::Corrupt(_) => ErrorKind::Corrupt,
            MetadataError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Whether retrying the same call may succeed. A [`MetadataError::Conflict`] is retryable
    /// only after re-reading, which is the caller's job, so it is not counted here.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MetadataError::Unavailable(_))
    }
}

pub type Result<T, E = MetadataError> = std::result::Result<T, E>;
