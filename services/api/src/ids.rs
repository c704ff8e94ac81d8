//! Identifier newtypes. Each wraps a primitive so that a ledger id can never be passed where an
//! entry id or an epoch is expected; the wire encoding is the primitive, little-endian.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! u64_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<u64> for $name {
            fn from(v: u64) -> Self {
                Self(v)
            }
        }
    };
}

u64_id!(
    /// A replicated ledger, allocated by the metadata store; unique within a cluster.
    LedgerId
);
u64_id!(
    /// An entry's position within its ledger: 0, 1, 2 … assigned by the ledger's single writer.
    EntryId
);
u64_id!(
    /// A stream offset: dense, 0-based, assigned by the stream's writer.
    Offset
);

/// A fencing token. A writer of a higher epoch fences every lower one; bookies refuse adds whose
/// epoch is below the highest fence they have made durable for the ledger.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl Epoch {
    pub const ZERO: Epoch = Epoch(0);

    pub const fn get(self) -> u64 {
        self.0
    }

    /// The epoch a new writer takes over from this one.
    pub const fn next(self) -> Epoch {
        Epoch(self.0.saturating_add(1))
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Wire value of "no entry" for optional entry ids (an empty ledger has no LAC).
pub const NO_ENTRY: u64 = u64::MAX;

impl EntryId {
    /// Encodes an optional entry id as its wire form ([`NO_ENTRY`] for `None`).
    pub fn to_wire(id: Option<EntryId>) -> u64 {
        id.map_or(NO_ENTRY, |e| e.0)
    }

    /// Decodes the wire form of an optional entry id.
    pub fn from_wire(v: u64) -> Option<EntryId> {
        (v != NO_ENTRY).then_some(EntryId(v))
    }

    pub fn next(self) -> EntryId {
        EntryId(self.0 + 1)
    }
}

/// An identifier that failed validation, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct InvalidId {
    pub what: &'static str,
    pub value: String,
    pub reason: &'static str,
}

/// A bookie's stable identity, chosen when its data dir is first formatted and kept in the
/// cookie; never derived from its address. `[a-z0-9][a-z0-9-]{0,63}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BookieId(String);

impl BookieId {
    pub const MAX_LEN: usize = 64;

    pub fn new(s: impl Into<String>) -> Result<Self, InvalidId> {
        let s = s.into();
        let err = |reason| InvalidId {
            what: "bookie id",
            value: s.clone(),
            reason,
        };
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(err("must be 1 to 64 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(err("only lowercase letters, digits and '-' are allowed"));
        }
        if s.starts_with('-') {
            return Err(err("must not start with '-'"));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BookieId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for BookieId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for BookieId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<BookieId> for String {
    fn from(id: BookieId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookie_id_validation() {
        assert!(BookieId::new("bookie-1").is_ok());
        assert!(BookieId::new("b").is_ok());
        for bad in ["", "-x", "Bookie", "a_b", "a b", &"x".repeat(65)] {
            let err = BookieId::new(bad).unwrap_err();
            assert_eq!(err.what, "bookie id", "{bad:?}");
        }
    }

    #[test]
    fn optional_entry_wire_roundtrip() {
        assert_eq!(EntryId::from_wire(EntryId::to_wire(None)), None);
        assert_eq!(
            EntryId::from_wire(EntryId::to_wire(Some(EntryId(7)))),
            Some(EntryId(7))
        );
    }
}
