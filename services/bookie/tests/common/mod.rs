//! Shared helpers for the bookie's in-process tests: a bookie with small files behind a real
//! TCP server on a free port, and entry construction.

#![allow(clippy::unwrap_used)]
// test code: a panic is the failure report
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use dlog_api::wire::bookie::AddEntry;
use dlog_api::{Entry, EntryId, Epoch, LedgerId};
use dlog_bookie::{Bookie, BookieConfig, server};
use dlog_ledger::{BookieClient, ClientOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Small journal files so that tests roll, recycle and compact quickly.
pub fn small_config(dir: &Path) -> BookieConfig {
    let mut c = BookieConfig::for_dir(dir);
    c.journal.file_size = 1 << 20;
    c.journal.max_commit_bytes = 256 << 10;
    c.max_entry_len = 128 << 10;
    c.max_inflight_bytes_per_connection = 4 << 20;
    c.cache_bytes = 1 << 20;
    // Tests flush and collect explicitly.
    c.index_flush_interval = Duration::from_secs(3600);
    c.gc.interval = Duration::from_secs(3600);
    c
}

#[derive(Debug)]
pub struct Running {
    pub bookie: Bookie,
    pub addr: String,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn start(cfg: BookieConfig) -> Running {
        Self::try_start(cfg).await.expect("bookie starts")
    }

    pub async fn try_start(cfg: BookieConfig) -> Result<Running, dlog_bookie::BookieError> {
        let bookie = tokio::task::spawn_blocking(move || Bookie::open(cfg))
            .await
            .unwrap()?;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(server::serve(bookie.clone(), listener, shutdown.clone()));
        Ok(Running {
            bookie,
            addr,
            shutdown,
            server,
        })
    }

    pub async fn client(&self) -> BookieClient {
        BookieClient::connect(&self.addr, ClientOptions::default())
            .await
            .unwrap()
    }

    /// Graceful stop: drain, final sync, index flush.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.server.await.unwrap();
        let b = self.bookie;
        tokio::task::spawn_blocking(move || b.shutdown())
            .await
            .unwrap();
    }
}

/// Deterministic payload of an entry, so a reader can check bytes without remembering them.
pub fn payload(ledger: LedgerId, entry: EntryId, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut x = ledger.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ entry.0.wrapping_add(1);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

pub fn entry_bytes(ledger: LedgerId, entry: EntryId, len: usize) -> Bytes {
    Entry::encode(
        ledger,
        entry,
        (entry.0 + 1) * len as u64,
        &payload(ledger, entry, len),
    )
}

pub fn add(ledger: LedgerId, entry: u64, epoch: u64, len: usize) -> AddEntry {
    AddEntry {
        ledger,
        entry: EntryId(entry),
        epoch: Epoch(epoch),
        lac: entry.checked_sub(1).map(EntryId),
        recovery: false,
        data: entry_bytes(ledger, EntryId(entry), len),
    }
}

pub fn journal_dir(data: &Path) -> PathBuf {
    data.join("journal")
}
