//! The errors of stream operations, each with its wire code.

use dlog_api::{ErrorCode, ErrorKind};
use dlog_ledger::{LedgerError, WriteError};
use dlog_metadata::MetadataError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    #[error("no such stream {0}")]
    NoSuchStream(String),
    #[error("stream {0} already exists")]
    StreamExists(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    InvalidPolicy(String),
    #[error("{0}")]
    BadRequest(String),
    /// A newer writer took the stream over; terminal for this writer.
    #[error("stream {0} was taken over by a newer writer")]
    Fenced(String),
    #[error("record {index} is {len} bytes, the stream's limit is {limit}")]
    RecordTooLarge {
        index: usize,
        len: usize,
        limit: usize,
    },
    #[error("offset {offset} is outside the stream's range {start}..{end}")]
    OffsetOutOfRange { offset: u64, start: u64, end: u64 },
    #[error("producer {producer}: sequence {got} does not follow {expected_next} - 1")]
    SequenceGap {
        producer: u64,
        expected_next: u64,
        got: u64,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("stream {0} has ended")]
    StreamEnded(String),
    /// Transient: bookies or the metadata store are unreachable; retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("corrupt: {0}")]
    Corrupt(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl LogError {
    pub fn code(&self) -> ErrorCode {
        match self {
            LogError::NoSuchStream(_) => ErrorCode::NoSuchStream,
            LogError::StreamExists(_) => ErrorCode::StreamExists,
            LogError::InvalidName(_) => ErrorCode::InvalidName,
            LogError::InvalidPolicy(_) => ErrorCode::InvalidPolicy,
            LogError::BadRequest(_) => ErrorCode::BadRequest,
            LogError::Fenced(_) => ErrorCode::Fenced,
            LogError::RecordTooLarge { .. } => ErrorCode::RecordTooLarge,
            LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            LogError::SequenceGap { .. } => ErrorCode::SequenceGap,
            LogError::Conflict(_) => ErrorCode::Conflict,
            LogError::StreamEnded(_) => ErrorCode::StreamEnded,
            LogError::Unavailable(_) => ErrorCode::StreamUnavailable,
            LogError::Corrupt(_) => ErrorCode::ChecksumMismatch,
            LogError::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.code().kind()
    }

    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }
}

impl From<MetadataError> for LogError {
    fn from(e: MetadataError) -> Self {
        match e.kind() {
            ErrorKind::Invalid => LogError::BadRequest(e.to_string()),
            ErrorKind::Corrupt => LogError::Corrupt(e.to_string()),
            ErrorKind::Internal => LogError::Internal(e.to_string()),
            _ => LogError::Unavailable(e.to_string()),
        }
    }
}

impl From<LedgerError> for LogError {
    fn from(e: LedgerError) -> Self {
        if e.is_retryable() {
            LogError::Unavailable(e.to_string())
        } else {
            LogError::Internal(e.to_string())
        }
    }
}

impl From<WriteError> for LogError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Fenced => LogError::Fenced("ledger fenced".into()),
            other => LogError::Unavailable(other.to_string()),
        }
    }
}

impl From<dlog_objects::ObjectError> for LogError {
    fn from(e: dlog_objects::ObjectError) -> Self {
        use dlog_objects::ObjectError as O;
        match e {
            O::Unavailable(_) => LogError::Unavailable(e.to_string()),
            O::Corrupt { .. } | O::NotFound(_) => LogError::Corrupt(e.to_string()),
            O::Invalid(_) => LogError::BadRequest(e.to_string()),
            O::AlreadyExists(_) | O::ManifestConflict { .. } => LogError::Conflict(e.to_string()),
            O::Internal(_) => LogError::Internal(e.to_string()),
        }
    }
}
