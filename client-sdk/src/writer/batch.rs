//! What the writer task holds: appends waiting to be batched ([`Pending`]) and encoded batches
//! waiting for their acknowledgement ([`Batch`]).
//!
//! A batch is one record set, sent as one append request numbered with the producer's sequence
//! of its first record. The records of one [`Writer::append_batch`](super::Writer::append_batch)
//! call are never split between batches, so they get consecutive offsets.

use std::time::Instant;

use bytes::Bytes;
use dlog_api::record::{RecordSetLimits, encode_record_set};
use dlog_api::{Compression, Offset, Record};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::error::ClientError;

/// Where the offset of an append (of its first record) is delivered.
pub(crate) type OffsetReply = oneshot::Sender<Result<Offset, ClientError>>;

/// Encoded bytes of a record besides its key and payload (flags, timestamp, lengths, txid).
const RECORD_OVERHEAD: usize = 1 + 8 + 4 + 4 + 8;
/// Bytes of a record set's header, and of an append request around it (frame header, stream
/// name, producer id, sequence, flags), rounded up.
pub(crate) const REQUEST_OVERHEAD: usize = 1024;

/// The encoded size of `records`, at most a few bytes over the exact size.
pub(crate) fn encoded_size(records: &[Record]) -> usize {
    records
        .iter()
        .map(|r| RECORD_OVERHEAD + r.payload.len() + r.key.as_ref().map_or(0, Bytes::len))
        .sum()
}

/// One append call queued in the writer, not yet in a batch.
#[derive(Debug)]
pub(crate) struct Pending {
    /// Numbers appends in the order the task received them (flushes wait by it).
    pub(crate) item: u64,
    pub(crate) records: Vec<Record>,
    pub(crate) bytes: usize,
    pub(crate) queued_at: Instant,
    pub(crate) reply: OffsetReply,
    /// Buffer space, given back when the append completes.
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

impl Pending {
    pub(crate) fn fail(self, err: &ClientError) {
        let _ = self.reply.send(Err(err.clone()));
    }
}

/// Appends encoded as one record set, sent (and resent) as one request.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) count: u32,
    pub(crate) records: Bytes,
    /// The first [`Pending::item`] in the batch.
    pub(crate) first_item: u64,
    /// Each append's reply and the index of its first record in the batch.
    waiters: Vec<(u32, OffsetReply)>,
    _permits: Vec<OwnedSemaphorePermit>,
}

impl Batch {
    /// Encodes `items` as one record set. On failure the items are failed with the error
    /// (nothing was sent, so no sequence number was used).
    pub(crate) fn encode(
        items: Vec<Pending>,
        compression: Compression,
        limits: &RecordSetLimits,
    ) -> Result<Batch, ClientError> {
        let total: usize = items.iter().map(|p| p.records.len()).sum();
        let mut records = Vec::with_capacity(total);
        let mut waiters = Vec::with_capacity(items.len());
        let mut permits = Vec::with_capacity(items.len());
        let first_item = items.first().map_or(0, |p| p.item);
        for p in items {
            // At most u32::MAX records: a set's count is a u32, checked by the encoder below.
            waiters.push((records.len() as u32, p.reply));
            records.extend(p.records);
            permits.extend(p.permit);
        }
        match encode_record_set(&records, compression, limits) {
            Ok(encoded) => Ok(Batch {
                count: records.len() as u32,
                records: encoded,
                first_item,
                waiters,
                _permits: permits,
            }),
            Err(e) => {
                let err = ClientError::invalid(format!("encode records: {e}"));
                for (_, reply) in waiters {
                    let _ = reply.send(Err(err.clone()));
                }
                Err(err)
            }
        }
    }

    /// Delivers each append's offset: the batch's records start at `first_offset`.
    pub(crate) fn complete(self, first_offset: Offset) {
        for (index, reply) in self.waiters {
            let _ = reply.send(Ok(Offset(first_offset.0 + u64::from(index))));
        }
    }

    pub(crate) fn fail(self, err: &ClientError) {
        for (_, reply) in self.waiters {
            let _ = reply.send(Err(err.clone()));
        }
    }
}
