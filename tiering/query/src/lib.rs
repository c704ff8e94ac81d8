//! SQL over a stream's offloaded segments, straight from the bucket (`dlog query`).
//!
//! A [`QueryEngine`] is a DataFusion session over one bucket with one table function,
//! `stream('NAMESPACE/NAME')`: the stream's offloaded records as a table with the columns of
//! the segment objects (`offset`, `timestamp_ms`, `txid`, `key`, `payload`; see
//! `dlog_objects::segment`). The objects are the ones the stream's latest manifest lists —
//! never a listing of the bucket, so an orphan or an object still being verified is not read —
//! and records below the manifest's start offset (truncated) are filtered out.
//!
//! Filters on `offset` and `timestamp_ms` are pushed down to the Parquet reader: row-group
//! statistics and the page index skip what cannot match, so a query for a range of offsets or
//! times reads only the pages that hold it.
//!
//! Only queries run: DDL (`CREATE …`), DML (`INSERT`, `COPY … TO`) and session statements are
//! refused, so a query can neither write to the bucket nor read files outside it. Memory is
//! bounded ([`QueryOptions::memory_limit`]); a query that needs more fails with a clear error.

mod engine;
mod error;
mod output;
mod table;

pub use engine::{QueryEngine, QueryOptions};
pub use error::QueryError;
pub use output::{OutputFormat, Printed, print_batches};
