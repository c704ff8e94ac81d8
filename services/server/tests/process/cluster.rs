//! Bookie processes forming a cluster through a real etcd: registration, a bookie killed with
//! -9 under a writer, writer processes killed or paused past a recovery's fence, and
//! re-replication by `dlogd autorecovery`. Part of the `process` test binary.

use super::*;

/// Four `dlogd bookie` processes join a cluster through a real etcd; a replicated ledger
/// survives one of them being killed with -9 mid-stream (the writer replaces it), a SIGTERM
/// deregisters a bookie before it exits, and a wiped data dir cannot take over a known id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookie_processes_form_a_cluster_through_etcd() {
    use dlog_ledger::registry::list_bookies;
    use dlog_ledger::{LedgerClient, LedgerOptions, Quorum};
    use dlog_metadata::MetadataStore;
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("etcd")).unwrap();
    let etcd = dlog_metadata::testing::Etcd::start(&dir.path().join("etcd"));
    let store: Arc<dyn MetadataStore> = Arc::new(etcd.connect("/it/").await);
    let url = format!("etcd://{}/it/", etcd.endpoint());
    let mut nodes: Vec<Option<Dlogd>> = (0..4)
        .map(|i| {
            let id = format!("bookie-{i}");
            Some(Dlogd::start_with(
                &dir.path().join(&id),
                &[
                    "--metadata",
                    &url,
                    "--id",
                    &id,
                    "--init",
                    "--registration-ttl",
                    "2s",
                ],
            ))
        })
        .collect();
    let t = Instant::now();
    while list_bookies(&*store).await.unwrap().len() < 4 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "bookies did not register"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut opts = LedgerOptions::default();
    opts.bookie.request_timeout = Duration::from_secs(3);
    let client = LedgerClient::new(store.clone(), opts);
    // Qa = Qw, so entries after the kill need the replacement.
    let w = client
        .create(Quorum::new(3, 3, 3).unwrap(), Epoch(1))
        .await
        .unwrap();
    let first = client.metadata(w.id()).await.unwrap().0;
    let data = |i: u64| Bytes::from(format!("record {i}").repeat(20));
    for i in 0..300 {
        w.append_wait(data(i)).await.unwrap();
    }
    let victim = first.current_ensemble()[0].clone();
    let vi = node_index(&victim);
    nodes[vi].take().unwrap().kill9();
    let mut acks = Vec::new();
    for i in 300..600 {
        acks.push(w.append(data(i)).await);
    }
    for (i, a) in acks.into_iter().enumerate() {
        assert_eq!(a.await.unwrap().unwrap(), EntryId(300 + i as u64));
    }
    let meta = w.close().await.unwrap();
    assert_eq!(meta.last_entry, Some(EntryId(599)));
    assert_eq!(meta.fragments.len(), 2, "{meta:?}");
    assert!(!meta.current_ensemble().contains(&victim));
    let mut r = client.open_reader(meta.id).await.unwrap();
    for i in 0..600 {
        assert_eq!(
            r.read(EntryId(i)).await.unwrap().payload,
            data(i),
            "entry {i}"
        );
    }
    // SIGTERM: the registration goes first, at once (not after the 2 s lease).
    let leaving = meta.current_ensemble()[0].clone();
    let li = node_index(&leaving);
    assert!(nodes[li].take().unwrap().sigterm().success());
    let ids: Vec<_> = list_bookies(&*store)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert!(
        !ids.contains(&leaving),
        "{leaving} still registered: {ids:?}"
    );
    // A wiped data dir under the killed bookie's id is refused by the cluster cookie.
    let out = dlogd(&[
        "bookie",
        "--data-dir",
        dir.path().join("wiped").to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--id",
        victim.as_str(),
        "--init",
        "--metadata",
        &url,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("decommission"), "{err}");
    for n in nodes.into_iter().flatten() {
        n.kill9();
    }
}

/// A cluster of `dlogd bookie` processes registered in a real etcd.
pub(super) struct ProcCluster {
    pub(super) dir: tempfile::TempDir,
    _etcd: dlog_metadata::testing::Etcd,
    pub(super) url: String,
    store: std::sync::Arc<dyn dlog_metadata::MetadataStore>,
    nodes: Vec<Option<Dlogd>>,
}

impl ProcCluster {
    pub(super) async fn start(n: usize) -> ProcCluster {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etcd")).unwrap();
        let etcd = dlog_metadata::testing::Etcd::start(&dir.path().join("etcd"));
        let store: std::sync::Arc<dyn dlog_metadata::MetadataStore> =
            std::sync::Arc::new(etcd.connect("/faults/").await);
        let url = format!("etcd://{}/faults/", etcd.endpoint());
        let mut c = ProcCluster {
            dir,
            _etcd: etcd,
            url,
            store,
            nodes: Vec::new(),
        };
        for i in 0..n {
            let node = c.spawn_bookie(i, true);
            c.nodes.push(Some(node));
        }
        c.wait_registered(n).await;
        c
    }

    fn spawn_bookie(&self, i: usize, init: bool) -> Dlogd {
        let id = format!("bookie-{i}");
        let mut args = vec![
            "--metadata",
            &self.url,
            "--id",
            &id,
            "--registration-ttl",
            "2s",
        ];
        if init {
            args.push("--init");
        }
        Dlogd::start_with(&self.dir.path().join(&id), &args)
    }

    async fn wait_registered(&self, n: usize) {
        let t = Instant::now();
        while dlog_ledger::registry::list_bookies(&*self.store)
            .await
            .unwrap()
            .len()
            < n
        {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "bookies did not register"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills every bookie still running.
    pub(super) fn stop(self) {
        for n in self.nodes.into_iter().flatten() {
            n.kill9();
        }
    }

    fn client(&self) -> dlog_ledger::LedgerClient {
        let mut o = dlog_ledger::LedgerOptions::default();
        o.bookie.request_timeout = Duration::from_secs(3);
        dlog_ledger::LedgerClient::new(self.store.clone(), o)
    }

    /// `dlogd ledger append` as its own process; its stdout lines arrive on the channel.
    fn spawn_writer(
        &self,
        count: u64,
    ) -> (
        Child,
        std::sync::mpsc::Receiver<serde_json::Value>,
        LedgerId,
    ) {
        let mut child = Command::new(DLOGD)
            .args(["ledger", "append", "--metadata", &self.url])
            .args([
                "--count",
                &count.to_string(),
                "--entry-size",
                "256",
                "--inflight",
                "64",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(out).lines() {
                let Ok(l) = l else { return };
                if let Ok(v) = serde_json::from_str(&l) {
                    let _ = tx.send(v);
                }
            }
        });
        // The writer's first line names its ledger.
        let first: serde_json::Value = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        let id = LedgerId(first["ledger"].as_u64().unwrap());
        (child, rx, id)
    }
}

/// The node index of a bookie started as `bookie-<i>`.
fn node_index(id: &dlog_api::BookieId) -> usize {
    id.as_str().trim_start_matches("bookie-").parse().unwrap()
}

fn writer_payload(e: u64) -> Bytes {
    dlog_server::ledger_cmd::payload(e, 256)
}

/// A 3/3/2 ledger holding entries `0..count` of the writer's payloads, closed.
async fn closed_ledger(
    client: &dlog_ledger::LedgerClient,
    count: u64,
) -> dlog_ledger::LedgerMetadata {
    let w = client
        .create(dlog_ledger::Quorum::DEFAULT, Epoch(1))
        .await
        .unwrap();
    for e in 0..count {
        w.append_wait(writer_payload(e)).await.unwrap();
    }
    w.close().await.unwrap()
}

/// Reads every entry up to the ledger's end and compares it with what the writer wrote.
async fn read_back(client: &dlog_ledger::LedgerClient, id: LedgerId, last: EntryId) {
    let mut r = client.open_reader(id).await.unwrap();
    for e in 0..=last.0 {
        assert_eq!(
            r.read(EntryId(e)).await.unwrap().payload,
            writer_payload(e),
            "entry {e}"
        );
    }
}

/// 10,000 pipelined 3/3/2 adds while a bookie process is killed with -9 every second or so
/// (and restarted from its data dir): every acknowledged entry reads back byte-equal after
/// recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookies_killed_every_second_lose_no_acknowledged_entry() {
    let mut c = ProcCluster::start(5).await;
    let client = c.client();
    let w = client
        .create(dlog_ledger::Quorum::DEFAULT, Epoch(1))
        .await
        .unwrap();
    let id = w.id();
    let writer = tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut window = std::collections::VecDeque::new();
        for e in 0..10_000u64 {
            window.push_back(w.append(writer_payload(e)).await);
            while window.len() > 64 || (e == 9_999 && !window.is_empty()) {
                match window.pop_front().unwrap().await.unwrap() {
                    Ok(x) => acked.push(x),
                    Err(err) => return (acked, Some(err)),
                }
            }
            if e % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        (acked, None)
    });
    let mut kills = 0;
    let mut rng = fastrand::Rng::with_seed(11);
    while !writer.is_finished() {
        tokio::time::sleep(Duration::from_millis(rng.u64(700..1300))).await;
        let i = rng.usize(..c.nodes.len());
        if let Some(n) = c.nodes[i].take() {
            n.kill9();
            kills += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
            c.nodes[i] = Some(c.spawn_bookie(i, false));
        }
    }
    let (acked, err) = writer.await.unwrap();
    assert!(
        kills >= 2,
        "only {kills} kills happened: the run was too short to mean much"
    );
    assert!(
        err.is_none(),
        "the writer failed: {err:?} after {} acks",
        acked.len()
    );
    assert!(acked.iter().enumerate().all(|(i, e)| e.0 == i as u64));
    c.wait_registered(5).await;
    let closed = c.client().recover(id).await.unwrap();
    assert!(closed.last_entry >= acked.last().copied(), "{closed:?}");
    read_back(&client, id, closed.last_entry.unwrap()).await;
    c.stop();
}

/// A writer process killed with -9: a new writer (recovery) fences the ledger and closes it at
/// or after the last entry the dead writer reported acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_with_9_is_recovered_past_its_last_ack() {
    let c = ProcCluster::start(3).await;
    let (mut child, lines, id) = c.spawn_writer(1_000_000);
    let mut last = None;
    while last.is_none_or(|l| l < 2_000) {
        let v = lines.recv_timeout(Duration::from_secs(30)).unwrap();
        last = v["acked"].as_u64().or(last);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Whatever it printed before dying counts as acknowledged.
    while let Ok(v) = lines.recv_timeout(Duration::from_millis(500)) {
        last = v["acked"].as_u64().or(last);
    }
    let last = EntryId(last.unwrap());
    let client = c.client();
    let closed = client.recover(id).await.unwrap();
    assert!(closed.last_entry >= Some(last), "{closed:?} < {last}");
    read_back(&client, id, closed.last_entry.unwrap()).await;
    c.stop();
}

/// A writer paused with SIGSTOP past the fence: once resumed it gets `fenced`, and nothing it
/// reports acknowledged lies beyond the sealed end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_writer_is_fenced_when_it_resumes() {
    let c = ProcCluster::start(3).await;
    let (mut child, lines, id) = c.spawn_writer(1_000_000);
    let mut acks = Vec::new();
    while acks.len() < 1_000 {
        if let Some(a) = lines.recv_timeout(Duration::from_secs(30)).unwrap()["acked"].as_u64() {
            acks.push(a);
        }
    }
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let closed = c.client().recover(id).await.unwrap();
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(!status.success(), "the resumed writer must fail");
    let mut fenced = false;
    while let Ok(v) = lines.recv_timeout(Duration::from_millis(500)) {
        if let Some(a) = v["acked"].as_u64() {
            acks.push(a);
        }
        fenced |= v["fenced"].as_bool() == Some(true);
    }
    assert!(fenced, "the writer did not report being fenced");
    let end = closed.last_entry.unwrap().0;
    assert!(
        acks.iter().all(|a| *a <= end),
        "acknowledged past the sealed end {end}"
    );
    assert!(
        acks.windows(2).all(|w| w[1] == w[0] + 1),
        "acks out of order"
    );
    c.stop();
}

/// A bookie lost for good: `dlogd autorecovery` brings its closed ledgers back to full
/// replication on the remaining bookies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_bookies_ledgers_return_to_full_replication() {
    let mut c = ProcCluster::start(4).await;
    let client = c.client();
    let meta = closed_ledger(&client, 500).await;
    let victim = meta.current_ensemble()[1].clone();
    let vi = node_index(&victim);
    c.nodes[vi].take().unwrap().kill9();
    let mut auto = Command::new(DLOGD)
        .args([
            "autorecovery",
            "--metadata",
            &c.url,
            "--grace",
            "3s",
            "--interval",
            "500ms",
        ])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let t = Instant::now();
    let fixed = loop {
        let (m, _) = client.metadata(meta.id).await.unwrap();
        if !m.all_bookies().contains(&victim) {
            break m;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "still on {victim}: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = auto.kill();
    let _ = auto.wait();
    // Every entry is on all three bookies of its write set again.
    for e in 0..500u64 {
        for b in fixed.write_set(EntryId(e)) {
            let addr = dlog_ledger::registry::list_bookies(&*c.store)
                .await
                .unwrap()
                .into_iter()
                .find(|r| r.id == b)
                .unwrap()
                .address;
            let bc = BookieClient::connect(&addr, ClientOptions::default())
                .await
                .unwrap();
            let got = bc.read(meta.id, EntryId(e), None).await.unwrap();
            let entry = Entry::decode(got.data, 1 << 20).unwrap();
            assert_eq!(entry.payload, writer_payload(e), "entry {e} on {b}");
        }
    }
    c.stop();
}

/// A replica that stops answering (SIGSTOP) does not stall readers: after
/// `speculative_read_delay` they ask the next replica. A fresh client that has never connected
/// to the paused bookie reads too (connecting to it hangs only its own requests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_around_a_paused_replica() {
    let c = ProcCluster::start(3).await;
    let client = c.client();
    let meta = closed_ledger(&client, 100).await;
    // Pause the first replica of every entry in turn: for 3/3/2 each bookie is first for a
    // third of the entries.
    let paused = meta.current_ensemble()[0].clone();
    let pi = node_index(&paused);
    let pid = c.nodes[pi].as_ref().unwrap().child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    for reader_client in [client, c.client()] {
        let t = Instant::now();
        let mut r = reader_client.open_reader(meta.id).await.unwrap();
        for e in 0..100u64 {
            assert_eq!(r.read(EntryId(e)).await.unwrap().payload, writer_payload(e));
        }
        // 34 entries have the paused bookie first; each costs about one speculative delay
        // (50 ms), not a request timeout (3 s).
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "reads took {:?}",
            t.elapsed()
        );
    }
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    c.stop();
}
