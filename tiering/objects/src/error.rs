//! The object tier's errors, each with the coarse kind that tells a caller what to do.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ObjectError {
    /// The store did not answer, or answered with a server error: retry.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    /// A bad URL, setting or request: fix it.
    #[error("invalid object store request: {0}")]
    Invalid(String),
    /// A conditional create found the key taken (keys are never overwritten).
    #[error("object {0} already exists")]
    AlreadyExists(String),
    #[error("no object {0}")]
    NotFound(String),
    /// Another writer committed this manifest version first.
    #[error("the manifest of {stream} already has version {version}")]
    ManifestConflict { stream: String, version: u64 },
    /// An object that does not hold what its name, metadata or manifest says.
    #[error("corrupt object {key}: {why}")]
    Corrupt { key: String, why: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ObjectError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ObjectError::Unavailable(_))
    }

    pub(crate) fn corrupt(key: impl Into<String>, why: impl std::fmt::Display) -> ObjectError {
        ObjectError::Corrupt {
            key: key.into(),
            why: why.to_string(),
        }
    }

    /// Classifies an `object_store` error about `key`.
    pub(crate) fn from_store(e: object_store::Error, key: &str) -> ObjectError {
        use object_store::Error as E;
        match e {
            E::NotFound { .. } => ObjectError::NotFound(key.to_string()),
            E::AlreadyExists { .. } | E::Precondition { .. } => {
                ObjectError::AlreadyExists(key.to_string())
            }
            E::NotSupported { .. }
            | E::NotImplemented { .. }
            | E::InvalidPath { .. }
            | E::UnknownConfigurationKey { .. } => ObjectError::Invalid(format!("{key}: {e}")),
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
                ObjectError::Invalid(format!("{key}: access denied: {e}"))
            }
            e => ObjectError::Unavailable(format!("{key}: {e}")),
        }
    }
}

impl From<parquet::errors::ParquetError> for ObjectError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        ObjectError::Internal(format!("parquet: {e}"))
    }
}

impl From<arrow_schema::ArrowError> for ObjectError {
    fn from(e: arrow_schema::ArrowError) -> Self {
        ObjectError::Internal(format!("arrow: {e}"))
    }
}
