//! The replication client against real bookies (in-process servers on loopback ports) and the
//! embedded metadata store: quorum writes, an ensemble change when a bookie dies mid-stream,
//! recovery racing the writer, concurrent recoveries.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dlog_api::{BookieId, EntryId, Epoch};
use dlog_bookie::{Bookie, BookieConfig, server};
use dlog_ledger::registry::{BookieRegistration, RegisteredState, Registration};
use dlog_ledger::{LedgerClient, LedgerOptions, LedgerState, Quorum, WriteError};
use dlog_metadata::{EmbeddedOptions, EmbeddedStore, MetadataStore};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Node {
    id: BookieId,
    bookie: Bookie,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    _reg: Registration,
}

impl Node {
    /// Stops the bookie and removes its registration (as a clean shutdown does).
    async fn stop_and_deregister(self) {
        let Node {
            bookie,
            stop,
            server,
            _reg,
            ..
        } = self;
        _reg.deregister().await.unwrap();
        stop.cancel();
        let _ = server.await;
        tokio::task::spawn_blocking(move || bookie.shutdown())
            .await
            .unwrap();
    }

    async fn kill(self) {
        self.stop.cancel();
        let _ = self.server.await;
        let b = self.bookie;
        tokio::task::spawn_blocking(move || b.shutdown())
            .await
            .unwrap();
    }
}

struct Cluster {
    _dir: tempfile::TempDir,
    store: Arc<dyn MetadataStore>,
    nodes: Vec<Option<Node>>,
}

impl Cluster {
    async fn start(n: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> = Arc::new(
            EmbeddedStore::open(dir.path().join("meta"), EmbeddedOptions::default())
                .await
                .unwrap(),
        );
        let mut nodes = Vec::new();
        for i in 0..n {
            let mut cfg = BookieConfig::for_dir(dir.path().join(format!("b{i}")));
            cfg.bookie_id = Some(BookieId::new(format!("bookie-{i}")).unwrap());
            cfg.init = true;
            cfg.journal.file_size = 8 << 20;
            cfg.journal.max_commit_bytes = 1 << 20;
            cfg.max_entry_len = 256 << 10;
            let bookie = tokio::task::spawn_blocking(move || Bookie::open(cfg))
                .await
                .unwrap()
                .unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let stop = CancellationToken::new();
            let server = tokio::spawn(server::serve(bookie.clone(), listener, stop.clone()));
            let id = bookie.cookie().bookie_id.clone();
            let reg = Registration::register(
                store.clone(),
                BookieRegistration {
                    id: id.clone(),
                    address: addr,
                    zone: String::new(),
                    instance_id: bookie.cookie().instance_id,
                    state: RegisteredState::Writable,
                    disk_total: 0,
                    disk_used: 0,
                },
                Duration::from_secs(30),
            )
            .await
            .unwrap();
            nodes.push(Some(Node {
                id,
                bookie,
                stop,
                server,
                _reg: reg,
            }));
        }
        Cluster {
            _dir: dir,
            store,
            nodes,
        }
    }

    fn client(&self) -> LedgerClient {
        let mut o = LedgerOptions::default();
        o.bookie.request_timeout = Duration::from_secs(3);
        o.seed = Some(7);
        LedgerClient::new(self.store.clone(), o)
    }

    async fn kill(&mut self, id: &BookieId) {
        let i = self
            .nodes
            .iter()
            .position(|n| n.as_ref().is_some_and(|n| &n.id == id))
            .unwrap();
        self.nodes[i].take().unwrap().kill().await;
    }
}

fn payload(i: u64) -> Bytes {
    Bytes::from(format!("entry {i} ").repeat((i % 7 + 1) as usize))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_writes_are_acknowledged_in_order_and_read_back() {
    let c = Cluster::start(3).await;
    let client = c.client();
    let w = client.create(Quorum::DEFAULT, Epoch(1)).await.unwrap();
    let mut acks = Vec::new();
    for i in 0..1000 {
        acks.push(w.append(payload(i)).await);
    }
    for (i, a) in acks.into_iter().enumerate() {
        assert_eq!(a.await.unwrap().unwrap(), EntryId(i as u64));
    }
    let meta = w.close().await.unwrap();
    let length: u64 = (0..1000).map(|i| payload(i).len() as u64).sum();
    assert_eq!(
        (meta.state, meta.last_entry, meta.length),
        (LedgerState::Closed, Some(EntryId(999)), length)
    );
    // Appending to a closed ledger is refused.
    assert_eq!(w.append_wait(payload(0)).await, Err(WriteError::Closed));
    let mut r = client.open_reader(meta.id).await.unwrap();
    for i in 0..1000u64 {
        let e = r.read(EntryId(i)).await.unwrap();
        assert_eq!(e.payload, payload(i));
    }
    assert!(r.read(EntryId(1000)).await.is_err());
    // Closing again returns the same metadata; recovering a closed ledger changes nothing.
    assert_eq!(client.recover(meta.id).await.unwrap(), meta);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bookie_dying_mid_stream_is_replaced_and_nothing_acknowledged_is_lost() {
    let mut c = Cluster::start(4).await;
    let client = c.client();
    // Qa = Qw: no entry after the death can be acknowledged without the replacement.
    let w = client
        .create(Quorum::new(3, 3, 3).unwrap(), Epoch(1))
        .await
        .unwrap();
    let first = client.metadata(w.id()).await.unwrap().0;
    let victim = first.current_ensemble()[1].clone();
    let mut acks: Vec<dlog_ledger::writer_task::AppendAck> = Vec::new();
    for i in 0..600u64 {
        if i == 300 {
            // Everything so far is acknowledged; then the bookie dies under a full pipeline.
            for (j, a) in acks.drain(..).enumerate() {
                assert_eq!(a.await.unwrap(), Ok(EntryId(j as u64)), "entry {j}");
            }
            c.kill(&victim).await;
        }
        acks.push(w.append(payload(i)).await);
    }
    for (i, a) in acks.into_iter().enumerate() {
        assert_eq!(
            a.await.unwrap(),
            Ok(EntryId(300 + i as u64)),
            "entry {}",
            300 + i
        );
    }
    let meta = w.close().await.unwrap();
    assert_eq!(meta.last_entry, Some(EntryId(599)));
    // The first fragment keeps the dead bookie for what it holds; the second replaced it.
    assert_eq!(meta.fragments.len(), 2, "{meta:?}");
    assert_eq!(meta.fragments[0].ensemble, first.current_ensemble());
    assert_eq!(meta.fragments[1].first_entry, EntryId(300));
    assert!(!meta.current_ensemble().contains(&victim));
    let mut r = client.open_reader(meta.id).await.unwrap();
    for i in 0..600u64 {
        assert_eq!(
            r.read(EntryId(i)).await.unwrap().payload,
            payload(i),
            "entry {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_fences_the_writer_and_keeps_every_acknowledged_entry() {
    let c = Cluster::start(3).await;
    let client = c.client();
    let w = client.create(Quorum::DEFAULT, Epoch(1)).await.unwrap();
    let id = w.id();
    // A writer streaming in the background while another process recovers the ledger.
    let writer = {
        let w = w.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut pending = std::collections::VecDeque::new();
            for i in 0..100_000u64 {
                pending.push_back((i, w.append(payload(i)).await));
                while pending.len() > 64 {
                    let (i, a) = pending.pop_front().unwrap();
                    match a.await.unwrap() {
                        Ok(e) => acked.push((i, e)),
                        Err(e) => return (acked, e),
                    }
                }
            }
            panic!("the writer was never fenced");
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = c.client();
    let closed = other.recover(id).await.unwrap();
    let (acked, err) = writer.await.unwrap();
    assert_eq!(err, WriteError::Fenced);
    assert!(!acked.is_empty());
    let last_acked = acked.last().unwrap().1;
    assert!(
        closed.last_entry >= Some(last_acked),
        "{closed:?} vs {last_acked}"
    );
    assert_eq!(closed.state, LedgerState::Closed);
    let expected_len: u64 = (0..=closed.last_entry.unwrap().0)
        .map(|i| payload(i).len() as u64)
        .sum();
    assert_eq!(closed.length, expected_len);
    let mut r = other.open_reader(id).await.unwrap();
    for i in 0..=closed.last_entry.unwrap().0 {
        assert_eq!(
            r.read(EntryId(i)).await.unwrap().payload,
            payload(i),
            "entry {i}"
        );
    }
    // The fenced writer cannot close over the recovery.
    assert_eq!(w.close().await, Err(WriteError::Fenced));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_recoveries_agree_on_the_end() {
    let c = Cluster::start(3).await;
    let client = c.client();
    let w = client.create(Quorum::DEFAULT, Epoch(1)).await.unwrap();
    for i in 0..200 {
        w.append_wait(payload(i)).await.unwrap();
    }
    let id = w.id();
    let rs: Vec<_> = (0..3)
        .map(|_| {
            let cl = c.client();
            tokio::spawn(async move { cl.recover(id).await })
        })
        .collect();
    let mut ends = Vec::new();
    for r in rs {
        match r.await.unwrap() {
            Ok(m) => ends.push(m.last_entry),
            Err(e) => assert!(
                matches!(e, dlog_ledger::LedgerError::Recovery(_)),
                "a losing recovery fails as fenced or retryable: {e}"
            ),
        }
    }
    // Whoever lost can simply recover again and sees the same closed ledger.
    let final_meta = client.recover(id).await.unwrap();
    assert_eq!(final_meta.last_entry, Some(EntryId(199)));
    assert!(ends.iter().all(|e| *e == Some(EntryId(199))), "{ends:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_ledgers_are_rereplicated_off_a_lost_bookie() {
    use dlog_ledger::rereplication::run_round;
    let mut c = Cluster::start(4).await;
    let client = c.client();
    let w = client.create(Quorum::DEFAULT, Epoch(1)).await.unwrap();
    for i in 0..200 {
        w.append_wait(payload(i)).await.unwrap();
    }
    let meta = w.close().await.unwrap();
    // Nothing lost: a round changes nothing.
    let r = run_round(&client, Duration::ZERO).await.unwrap();
    assert_eq!(
        (r.fragments_rereplicated, r.lost_bookies.len()),
        (0, 0),
        "{r:?}"
    );
    let victim = meta.current_ensemble()[0].clone();
    let i = c
        .nodes
        .iter()
        .position(|n| n.as_ref().is_some_and(|n| n.id == victim))
        .unwrap();
    c.nodes[i].take().unwrap().stop_and_deregister().await;
    // Within the grace period it is only missing, not lost.
    let r = run_round(&client, Duration::from_secs(3600)).await.unwrap();
    assert_eq!(r.fragments_rereplicated, 0, "{r:?}");
    let r = run_round(&client, Duration::ZERO).await.unwrap();
    assert_eq!(r.lost_bookies, std::slice::from_ref(&victim));
    assert_eq!(
        (r.fragments_rereplicated, r.entries_copied, r.failed),
        (1, 200, 0),
        "{r:?}"
    );
    let (after, _) = client.metadata(meta.id).await.unwrap();
    assert!(!after.all_bookies().contains(&victim), "{after:?}");
    assert_eq!(after.last_entry, meta.last_entry);
    // The replacement holds every entry itself, byte for byte.
    let new = after.current_ensemble()[0].clone();
    let node = c.nodes.iter().flatten().find(|n| n.id == new).unwrap();
    let direct = dlog_ledger::BookieClient::connect(&node_addr(&c, &new).await, Default::default())
        .await
        .unwrap();
    for e in 0..200u64 {
        let got = direct.read(meta.id, EntryId(e), None).await.unwrap();
        let entry = dlog_api::Entry::decode(got.data, 1 << 20).unwrap();
        assert_eq!(entry.payload, payload(e), "entry {e} on {}", node.id);
    }
    // And the next round has nothing left to do.
    let r = run_round(&client, Duration::ZERO).await.unwrap();
    assert_eq!(r.fragments_rereplicated, 0, "{r:?}");
}

async fn node_addr(c: &Cluster, id: &BookieId) -> String {
    dlog_ledger::registry::list_bookies(&*c.store)
        .await
        .unwrap()
        .into_iter()
        .find(|r| &r.id == id)
        .unwrap()
        .address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_the_bookies_refuse_stops_the_writer_without_ensemble_changes() {
    let c = Cluster::start(4).await;
    let client = c.client();
    let w = client.create(Quorum::DEFAULT, Epoch(1)).await.unwrap();
    w.append_wait(payload(0)).await.unwrap();
    // The bookies here take entries of up to 256 KiB; the client would allow 4 MiB.
    let r = w.append_wait(Bytes::from(vec![7u8; 300 << 10])).await;
    assert!(matches!(r, Err(WriteError::Invalid(_))), "{r:?}");
    let (meta, _) = client.metadata(w.id()).await.unwrap();
    assert_eq!(meta.fragments.len(), 1, "no bookie was replaced: {meta:?}");
    // The ledger is recoverable with the entry that was acknowledged.
    let closed = client.recover(w.id()).await.unwrap();
    assert_eq!(closed.last_entry, Some(EntryId(0)));
}

/// Tail reading an open ledger: reads stop at the LAC; the idle writer's explicit LAC makes
/// the last entry readable without another append; a long-poll wakes when the LAC moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_readers_never_pass_the_lac_and_wake_when_it_moves() {
    let c = Cluster::start(3).await;
    let client = c.client();
    let w = client.create(Quorum::DEFAULT, Epoch(1)).await.unwrap();
    for i in 0..10 {
        w.append_wait(payload(i)).await.unwrap();
    }
    let mut r = client.open_reader(w.id()).await.unwrap();
    // The piggybacked LAC lags one entry behind; the idle writer's explicit LAC catches up.
    let t = std::time::Instant::now();
    while r.read_lac().await.unwrap() != Some(EntryId(9)) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the idle writer never sent its LAC"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(r.read(EntryId(9)).await.unwrap().payload, payload(9));
    assert!(matches!(
        r.read(EntryId(10)).await,
        Err(dlog_ledger::LedgerError::PastEnd { .. })
    ));
    // A long-poll for news past 9 wakes when entry 10 is acknowledged.
    let poll = tokio::spawn(async move {
        let t = std::time::Instant::now();
        let lac = r
            .wait_lac(Some(EntryId(9)), Duration::from_secs(10))
            .await
            .unwrap();
        (lac, t.elapsed(), r)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    w.append_wait(payload(10)).await.unwrap();
    let (lac, waited, mut r) = poll.await.unwrap();
    assert_eq!(lac, Some(EntryId(10)));
    assert!(waited < Duration::from_secs(5), "long-poll took {waited:?}");
    assert_eq!(r.read(EntryId(10)).await.unwrap().payload, payload(10));
}
