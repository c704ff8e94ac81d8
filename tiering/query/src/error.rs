//! The query engine's errors, each with the coarse kind that tells a caller what to do.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use dlog_objects::ObjectError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum QueryError {
    /// Bad SQL, an unknown column or stream, a refused statement: fix the query.
    #[error("{0}")]
    Invalid(String),
    /// The object store did not answer: retry.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    /// An object that does not hold what the manifest says.
    #[error("corrupt object: {0}")]
    Corrupt(String),
    /// The query needs more memory than it may use.
    #[error("query needs more memory than allowed: {0}")]
    ResourcesExhausted(String),
    /// Writing the rows failed (a closed pipe, a full disk).
    #[error("write output: {0}")]
    Output(#[source] std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl QueryError {
    /// Whether the same query may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, QueryError::Unavailable(_))
    }
}

impl From<ObjectError> for QueryError {
    fn from(e: ObjectError) -> Self {
        match e {
            ObjectError::Unavailable(_) => QueryError::Unavailable(e.to_string()),
            ObjectError::Corrupt { .. } => QueryError::Corrupt(e.to_string()),
            ObjectError::Invalid(_) | ObjectError::NotFound(_) => {
                QueryError::Invalid(e.to_string())
            }
            ObjectError::AlreadyExists(_)
            | ObjectError::ManifestConflict { .. }
            | ObjectError::Internal(_) => QueryError::Internal(e.to_string()),
        }
    }
}

impl From<ArrowError> for QueryError {
    fn from(e: ArrowError) -> Self {
        match e {
            ArrowError::IoError(_, io) => QueryError::Output(io),
            ArrowError::ExternalError(inner) => DataFusionError::External(inner).into(),
            other => QueryError::Internal(other.to_string()),
        }
    }
}

impl From<DataFusionError> for QueryError {
    fn from(e: DataFusionError) -> Self {
        // Errors raised by our own table provider travel through DataFusion as External.
        let e = e.find_root();
        match e {
            DataFusionError::External(inner) => {
                if let Some(q) = inner.downcast_ref::<QueryError>() {
                    return q.clone_kind();
                }
                if let Some(o) = inner.downcast_ref::<ObjectError>() {
                    return o.clone().into();
                }
                QueryError::Internal(inner.to_string())
            }
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_)
            | DataFusionError::Configuration(_) => QueryError::Invalid(strip(e)),
            DataFusionError::ObjectStore(s) => QueryError::Unavailable(s.to_string()),
            DataFusionError::ParquetError(p) => QueryError::Corrupt(p.to_string()),
            DataFusionError::IoError(io) => QueryError::Unavailable(io.to_string()),
            DataFusionError::ResourcesExhausted(m) => QueryError::ResourcesExhausted(m.clone()),
            DataFusionError::Execution(m) => QueryError::Invalid(m.clone()),
            other => QueryError::Internal(other.to_string()),
        }
    }
}

impl QueryError {
    fn clone_kind(&self) -> QueryError {
        match self {
            QueryError::Invalid(m) => QueryError::Invalid(m.clone()),
            QueryError::Unavailable(m) => QueryError::Unavailable(m.clone()),
            QueryError::Corrupt(m) => QueryError::Corrupt(m.clone()),
            QueryError::ResourcesExhausted(m) => QueryError::ResourcesExhausted(m.clone()),
            QueryError::Internal(m) => QueryError::Internal(m.clone()),
            QueryError::Output(e) => {
                QueryError::Output(std::io::Error::new(e.kind(), e.to_string()))
            }
        }
    }
}

/// DataFusion's message without its "Error during planning: " style prefix, which says
/// nothing to someone who wrote SQL.
fn strip(e: &DataFusionError) -> String {
    let s = e.to_string();
    for p in [
        "Error during planning: ",
        "SQL error: ",
        "Schema error: ",
        "This feature is not implemented: ",
        "Invalid or Unsupported Configuration: ",
    ] {
        if let Some(rest) = s.strip_prefix(p) {
            return rest.to_string();
        }
    }
    s
}
