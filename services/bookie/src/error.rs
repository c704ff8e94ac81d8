//! The bookie's error type. Every variant maps to a stable wire [`ErrorCode`].

use dlog_api::{EntryError, EntryId, Epoch, ErrorCode, ErrorKind, LedgerId};

#[derive(Debug, thiserror::Error)]
pub enum BookieError {
    #[error("bookie is read-only: {0}")]
    ReadOnly(String),
    #[error("journal failed, nothing more is acknowledged until restart: {0}")]
    JournalFailed(String),
    #[error("bookie is shutting down")]
    ShuttingDown,
    #[error("ledger {ledger} is fenced at epoch {fence_epoch}; request epoch {epoch} is older")]
    Fenced {
        ledger: LedgerId,
        epoch: Epoch,
        fence_epoch: Epoch,
    },
    #[error("ledger {0} was deleted")]
    LedgerDeleted(LedgerId),
    #[error(
        "bookie found damage and may have lost a fence of ledger {0}: it refuses adds at epoch {1} \
         or below (replace this bookie in the ensemble)"
    )]
    SuspectLedger(LedgerId, Epoch),
    #[error("no such ledger {0}")]
    NoSuchLedger(LedgerId),
    #[error("no such entry {ledger}/{entry}")]
    NoSuchEntry { ledger: LedgerId, entry: EntryId },
    #[error("entry {ledger}/{entry} unknown: {reason}")]
    UnknownEntry {
        ledger: LedgerId,
        entry: EntryId,
        reason: String,
    },
    #[error("entry {ledger}/{entry} refused: {source}")]
    BadEntry {
        ledger: LedgerId,
        entry: EntryId,
        #[source]
        source: EntryError,
    },
    #[error("entry of {len} bytes exceeds the limit of {limit}")]
    EntryTooLarge { len: usize, limit: usize },
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("bookie identity: {0}")]
    Identity(String),
    #[error("invalid bookie config: {0}")]
    Config(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("index: {0}")]
    Index(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl BookieError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BookieError {
        let context = context.into();
        move |source| BookieError::Io { context, source }
    }

    /// The wire code this error is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            BookieError::ReadOnly(_) => ErrorCode::ReadOnly,
            BookieError::JournalFailed(_) => ErrorCode::JournalFailed,
            BookieError::ShuttingDown => ErrorCode::ShuttingDown,
            BookieError::Fenced { .. } => ErrorCode::Fenced,
            BookieError::LedgerDeleted(_) => ErrorCode::LedgerDeleted,
            BookieError::SuspectLedger(..) => ErrorCode::LedgerSuspect,
            BookieError::NoSuchLedger(_) => ErrorCode::NoSuchLedger,
            BookieError::NoSuchEntry { .. } => ErrorCode::NoSuchEntry,
            BookieError::UnknownEntry { .. } => ErrorCode::UnknownEntry,
            BookieError::BadEntry { source, .. } => match source {
                EntryError::Decode(_) => ErrorCode::BadRequest,
                EntryError::Checksum { .. } | EntryError::WrongId { .. } => {
                    ErrorCode::ChecksumMismatch
                }
            },
            BookieError::EntryTooLarge { .. } => ErrorCode::EntryTooLarge,
            BookieError::BadRequest(_) => ErrorCode::BadRequest,
            BookieError::Identity(_)
            | BookieError::Config(_)
            | BookieError::Io { .. }
            | BookieError::Index(_)
            | BookieError::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.code().kind()
    }
}
