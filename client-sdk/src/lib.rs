//! `dlog-client`: the Rust SDK of dlog, and the `dlog` command-line tool built on it.
//!
//! Start from a [`Client`] (one per cluster; cheap to clone), then:
//!
//! - [`Writer`] ([`Client::writer`]): batched, pipelined, idempotent appends to one stream,
//!   each acknowledged with its offset once durable.
//! - [`Reader`] ([`Client::reader`]): a [`futures::Stream`] of a stream's records from a chosen
//!   start ([`StartAt`]), ending once caught up or following the tail.
//! - [`Admin`] ([`Client::admin`]): create, describe, list, delete, truncate and end streams;
//!   commit and fetch subscription positions.
//!
//! ```no_run
//! use dlog_client::{Client, ReaderOptions, Record, StreamName, WriterOptions};
//! use futures::StreamExt;
//!
//! # async fn example() -> Result<(), dlog_client::ClientError> {
//! let client = Client::connect("127.0.0.1:7070").await?;
//! let stream: StreamName = "app/events".parse()?;
//! client.admin().create_stream(&stream, None).await?;
//!
//! let writer = client.writer(&stream, WriterOptions::default());
//! let offset = writer.append(Record::new("hello")).await.await?;
//!
//! let mut reader = client.reader(&stream, ReaderOptions::default());
//! while let Some(read) = reader.next().await {
//!     let read = read?;
//!     println!("{}: {:?}", read.offset, read.record.payload);
//! }
//! # let _ = offset;
//! # Ok(()) }
//! ```
//!
//! The SDK speaks the client protocol (`docs/protocol.md`, "The client protocol") through the
//! codec of `dlog-api`: one pipelined connection per service node (`connection.rs`), requests
//! routed to a stream's owner with "not owner" redirects followed (`routing.rs`). Every failure
//! is a [`ClientError`] whose [`ErrorKind`] says whether to retry.
//!
//! With the default `cli` feature the crate also holds the `dlog` tool ([`cli`]); turn it off
//! (`default-features = false`) to use the SDK without its dependencies.

#![warn(missing_docs)]

pub mod admin;
mod backoff;
pub mod bucket;
pub mod client;
mod connection;
pub mod error;
pub mod reader;
mod routing;
pub mod writer;

#[cfg(feature = "cli")]
pub mod cli;

#[cfg(test)]
mod tests;

pub use admin::Admin;
pub use bucket::BucketReader;
pub use client::{Client, ClientOptions, ServerInfo};
pub use dlog_objects::S3Options;
pub use error::ClientError;
pub use reader::{ReadRecord, Reader, ReaderOptions, StartAt};
pub use writer::{AppendFuture, Writer, WriterOptions};

/// The shared types of dlog (records, stream names, policies, error codes, the wire protocol).
pub use dlog_api as api;
pub use dlog_api::stream::{StreamInfo, StreamPolicy};
pub use dlog_api::wire::client::{OwnerInfo, Records, SeekBy};
pub use dlog_api::{Compression, ErrorCode, ErrorKind, Offset, Record, StreamName};
