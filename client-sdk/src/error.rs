//! The one error type of the SDK, [`ClientError`].
//!
//! Every failure, whether a service node answered with an error code or something went wrong on
//! this side (a lost connection, a timeout, bad input), becomes a [`ClientError`] carrying the
//! coarse [`ErrorKind`] a caller acts on: `Unavailable` is worth retrying (the SDK's writer and
//! reader already do), `Invalid` means the request must change, and the others are terminal.
//! The wire [`ErrorCode`] is kept when a node sent one, so callers can match on it precisely.

use std::fmt;

use dlog_api::wire::client::ResponseError;
use dlog_api::{ErrorCode, ErrorKind, InvalidId};

/// An error from the SDK: what kind it is, the node's error code if it answered with one, and
/// a lowercase message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ClientError {
    kind: ErrorKind,
    code: Option<ErrorCode>,
    message: String,
    /// With [`ErrorCode::NotOwner`]: the owner's address, when the node knew it.
    owner: Option<String>,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A node's messages name what went wrong ("no such stream ns/x"); the code's name is
        // only needed when there is no message.
        match self.code {
            Some(code) if self.message.is_empty() => f.write_str(code.as_str()),
            _ => f.write_str(&self.message),
        }
    }
}

impl ClientError {
    /// An error of `kind` that no node sent (raised on this side).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: None,
            message: message.into(),
            owner: None,
        }
    }

    /// A transient local failure (connection refused or lost, timeout): retryable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// Input this side refuses before sending it (too large, malformed): fix the request.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    /// A node sent something this client cannot make sense of.
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// An error a node answered with.
    pub fn from_code(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            kind: code.kind(),
            code: Some(code),
            message: message.into(),
            owner: None,
        }
    }

    /// What the caller should do about it.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The node's error code, if a node answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        self.code
    }

    /// The message, without the code's name.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying the same request later (or elsewhere) may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// For a "not owner" answer: the owner's address, if the node knew it.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// Whether this is a "not owner" redirect.
    pub fn is_not_owner(&self) -> bool {
        self.code == Some(ErrorCode::NotOwner)
    }

    /// The same error with `context` (a present-tense verb phrase) in front of the message.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = if self.message.is_empty() {
            context.to_string()
        } else {
            format!("{context}: {}", self.message)
        };
        self
    }
}

impl From<InvalidId> for ClientError {
    fn from(e: InvalidId) -> Self {
        Self::invalid(e.to_string())
    }
}

impl From<ResponseError> for ClientError {
    fn from(e: ResponseError) -> Self {
        Self {
            kind: e.code.kind(),
            code: Some(e.code),
            message: e.message,
            owner: e.owner.filter(|o| !o.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_keep_code_kind_and_owner() {
        let e = ClientError::from(ResponseError::not_owner(
            Some("10.0.0.2:7070".into()),
            "stream ns/s is owned elsewhere",
        ));
        assert_eq!(e.code(), Some(ErrorCode::NotOwner));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_retryable());
        assert!(e.is_not_owner());
        assert_eq!(e.owner(), Some("10.0.0.2:7070"));
        assert_eq!(e.to_string(), "stream ns/s is owned elsewhere");

        let e = ClientError::from(ResponseError::new(ErrorCode::NoSuchStream, "ns/x"));
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(!e.is_retryable());
        assert_eq!(e.owner(), None);
        assert_eq!(
            ClientError::from_code(ErrorCode::Conflict, "").to_string(),
            "conflict"
        );
    }

    #[test]
    fn local_errors_have_no_code() {
        let e = ClientError::unavailable("connect to 127.0.0.1:1: connection refused");
        assert!(e.is_retryable());
        assert_eq!(e.code(), None);
        let e = ClientError::invalid("record of 5 bytes").context("append to ns/s");
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert_eq!(e.to_string(), "append to ns/s: record of 5 bytes");
    }
}
