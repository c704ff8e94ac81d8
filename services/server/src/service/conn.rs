//! The client protocol on TCP: one task per connection, requests pipelined and answered out
//! of order (see `docs/protocol.md`, "The client protocol").
//!
//! Appends are queued on the stream's writer in arrival order — so a client's pipelined
//! appends to a stream get offsets in the order it sent them — and answered from their own
//! tasks once durable. Reads, seeks and admin requests run in their own tasks; a long-poll read
//! holds only its task. Request bytes in flight per connection are bounded by a semaphore: a
//! client that outruns the bookies stops being read, and TCP pushes back. A frame that cannot
//! be cut is answered with its error and the connection is closed; a well-framed request with
//! a bad body gets an error and the connection goes on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use dlog_api::admin::AdminRequest;
use dlog_api::stream::StreamName;
use dlog_api::wire::client::{
    self, Appended, HelloOk, MAX_READ_WAIT_MS, OwnerInfo, Records, Request, Response,
    ResponseError, SeekBy,
};
use dlog_api::wire::{FrameCodec, FrameError, PROTOCOL_VERSION};
use dlog_api::{ErrorCode, Offset};
use dlog_log::{AppendBatch, LogError, StreamReader};
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use super::Service;
use super::admin;
use super::ownership::NotMine;

/// How long a read below the owner's acknowledged end may wait for the LAC to reach it.
const OWN_WRITES_WAIT: Duration = Duration::from_secs(2);

/// How long a closing connection may take to deliver its last answers.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// One answer to write, with the in-flight budget it holds until written.
struct Out {
    op: u8,
    id: u64,
    msg: Result<Response, ResponseError>,
    _hold: Option<OwnedSemaphorePermit>,
}

fn error_of(e: &LogError) -> ResponseError {
    ResponseError::new(e.code(), e.to_string())
}

/// Serves the client protocol on `listener` until `shutdown`, then drains connections.
pub async fn serve(svc: Arc<Service>, listener: TcpListener, shutdown: CancellationToken) {
    let addr = listener.local_addr().ok();
    info!(?addr, node = %svc.opts.node, "log service listening");
    let tracker = TaskTracker::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    svc.metrics.connections.inc();
                    let span = info_span!("client", %peer);
                    tracker.spawn(connection(svc.clone(), stream, shutdown.clone()).instrument(span));
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    info!("log service stopped");
}

/// A connection's readers, one per stream, kept between requests so that sequential reads
/// need no search.
type Readers = Arc<Mutex<HashMap<StreamName, StreamReader>>>;

async fn connection(svc: Arc<Service>, stream: TcpStream, shutdown: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let max_frame = svc.opts.max_frame_len;
    let (rd, wr) = stream.into_split();
    let mut frames = FramedRead::with_capacity(rd, FrameCodec::new(max_frame), 256 << 10);
    let (tx, rx) = mpsc::unbounded_channel::<Out>();
    let mut writer = tokio::spawn(write_loop(wr, rx, max_frame));
    let budget = svc.opts.max_inflight_bytes_per_connection;
    let inflight = Arc::new(Semaphore::new(budget));
    let tasks = TaskTracker::new();
    let readers: Readers = Arc::default();
    let mut handshaken = false;
    loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            f = frames.next() => f,
        };
        let frame = match next {
            None => break,
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                if let Some(code) = e.code() {
                    let id = match &e {
                        FrameError::UnsupportedVersion { request_id, .. } => *request_id,
                        _ => 0,
                    };
                    let _ = tx.send(bare(0, id, Err(ResponseError::new(code, e.to_string()))));
                }
                warn!(error = %e, "closing connection on a bad frame");
                break;
            }
        };
        let (op, id) = (frame.op, frame.request_id);
        let req = match Request::decode(&frame) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(bare(
                    op,
                    id,
                    Err(ResponseError::new(e.code(), e.to_string())),
                ));
                continue;
            }
        };
        if !handshaken {
            let Request::Hello(h) = req else {
                let e = ResponseError::new(ErrorCode::HandshakeRequired, "send hello first");
                let _ = tx.send(bare(op, id, Err(e)));
                break;
            };
            if h.min_version > PROTOCOL_VERSION || h.max_version < PROTOCOL_VERSION {
                let msg = format!(
                    "client speaks versions {}..={}, this node speaks {PROTOCOL_VERSION}",
                    h.min_version, h.max_version
                );
                let e = ResponseError::new(ErrorCode::UnsupportedVersion, msg);
                let _ = tx.send(bare(op, id, Err(e)));
                break;
            }
            if !h.auth_method.is_empty() {
                let msg = format!("authentication method {:?} is not supported", h.auth_method);
                let e = ResponseError::new(ErrorCode::Unauthenticated, msg);
                let _ = tx.send(bare(op, id, Err(e)));
                break;
            }
            handshaken = true;
            debug!(client = %h.client, "handshake");
            let ok = Response::Hello(HelloOk {
                version: PROTOCOL_VERSION,
                server_id: svc.opts.node.clone(),
                max_frame_len: max_frame as u32,
                max_record_bytes: svc.opts.default_policy.max_record_bytes,
            });
            let _ = tx.send(bare(op, id, Ok(ok)));
            continue;
        }
        // Bound the memory this connection holds: request bytes plus an answer allowance
        // (reads are answered with up to their `max_bytes`, capped below).
        let cost = (frame.body.len() + 4096).min(budget) as u32;
        let Ok(permit) = inflight.clone().acquire_many_owned(cost).await else {
            break;
        };
        let tx2 = tx.clone();
        let reply = move |msg: Result<Response, ResponseError>| {
            let _ = tx2.send(Out {
                op,
                id,
                msg,
                _hold: Some(permit),
            });
        };
        match req {
            Request::Hello(_) => reply(Err(ResponseError::new(
                ErrorCode::BadRequest,
                "hello sent twice",
            ))),
            Request::Append(a) => append(&svc, &tasks, a, reply).await,
            Request::Read(r) => {
                let (svc, readers) = (svc.clone(), readers.clone());
                tasks.spawn(async move { reply(read(&svc, &readers, r).await) });
            }
            Request::Seek(s) => {
                let svc = svc.clone();
                tasks.spawn(async move { reply(seek(&svc, s).await) });
            }
            Request::Lookup(stream) => {
                let svc = svc.clone();
                tasks.spawn(async move {
                    let r = match svc.ownership.owner(&stream).await {
                        Ok(o) => {
                            let epoch =
                                svc.ownership.local_writer(&stream).map_or(0, |w| w.epoch());
                            Ok(Response::Owner(OwnerInfo {
                                owner: o.map(|o| o.address),
                                epoch,
                            }))
                        }
                        Err(e) => Err(error_of(&e)),
                    };
                    reply(r);
                });
            }
            Request::Admin(json) => {
                let svc = svc.clone();
                tasks.spawn(async move { reply(admin_op(&svc, &json).await) });
            }
        }
    }
    tasks.close();
    drop(tx);
    let drain = async {
        tasks.wait().await;
        let _ = (&mut writer).await;
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        warn!("connection did not drain in {DRAIN_TIMEOUT:?}; closing it");
        writer.abort();
    }
}

fn bare(op: u8, id: u64, msg: Result<Response, ResponseError>) -> Out {
    Out {
        op,
        id,
        msg,
        _hold: None,
    }
}

/// Queues an append on the stream's writer (in arrival order) and answers it from a task once
/// it is durable.
async fn append(
    svc: &Arc<Service>,
    tasks: &TaskTracker,
    a: client::Append,
    reply: impl FnOnce(Result<Response, ResponseError>) + Send + 'static,
) {
    let started = Instant::now();
    let m = &svc.metrics;
    let writer = match svc.ownership.writer(&a.stream).await {
        Ok(w) => w,
        Err(NotMine::Owner(owner)) => {
            m.redirects.inc();
            let msg = format!("{} is owned by another node", a.stream);
            return reply(Err(ResponseError::not_owner(owner, msg)));
        }
        Err(NotMine::Log(e)) => {
            m.append_errors.inc();
            return reply(Err(error_of(&e)));
        }
    };
    let bytes = a.records.len() as u64;
    let policy = writer.policy();
    let batch = match AppendBatch::from_record_set(a.producer_id, a.sequence, a.records, policy) {
        Ok(b) => b,
        Err(e) => {
            m.append_errors.inc();
            return reply(Err(error_of(&e)));
        }
    };
    let fut = writer.append(batch).await;
    let svc = svc.clone();
    let stream = a.stream;
    tasks.spawn(async move {
        let r = fut.await.unwrap_or_else(|_| {
            Err(LogError::Unavailable(format!(
                "the writer of {stream} stopped"
            )))
        });
        let m = &svc.metrics;
        match r {
            Ok(done) => {
                m.appends.inc();
                m.append_records.add(u64::from(done.count));
                m.append_bytes.add(bytes);
                m.append_latency.observe(started.elapsed());
                reply(Ok(Response::Appended(Appended {
                    first_offset: Offset(done.first_offset),
                    count: done.count,
                    duplicate: done.duplicate,
                })));
            }
            Err(e) => {
                m.append_errors.inc();
                if matches!(e, LogError::Fenced(_) | LogError::Unavailable(_)) {
                    // The writer is finished here: let the next append take the stream over
                    // (on this node or wherever it now lives).
                    svc.ownership.drop_writer(&stream, writer.epoch()).await;
                }
                reply(Err(error_of(&e)));
            }
        }
    });
}

async fn read(
    svc: &Service,
    readers: &Readers,
    r: client::Read,
) -> Result<Response, ResponseError> {
    let mut reader = readers
        .lock()
        .remove(&r.stream)
        .unwrap_or_else(|| StreamReader::new(svc.log.clone(), r.stream.clone()));
    let wait = Duration::from_millis(u64::from(r.wait_ms.min(MAX_READ_WAIT_MS)));
    // An answer holds at most `max_bytes`, or one entry if that alone is larger (at most the
    // ledger's 4 MiB entry limit): 1 MiB below the frame limit leaves room for either.
    let room = svc.opts.max_frame_len.saturating_sub(1 << 20).max(64 << 10);
    let max_bytes = (r.max_bytes as usize).clamp(1, room);
    // The owner knows the acknowledged end exactly: past it is out of range, and below it the
    // read waits for the bookies' LAC to catch up (the writer publishes it within
    // milliseconds), so that a client reads its own acknowledged appends. Elsewhere the LAC
    // may lag the acknowledgements, and a read there just waits.
    let mut wait = wait;
    if let Some(w) = svc.ownership.local_writer(&r.stream) {
        let end = *w.acked_end().borrow();
        if r.offset.0 < end {
            wait = wait.max(OWN_WRITES_WAIT);
        }
        if r.offset.0 > end {
            readers.lock().insert(r.stream.clone(), reader);
            svc.metrics.read_errors.inc();
            let start = match svc.log.load(&r.stream).await {
                Ok(st) => st.record.start_offset,
                Err(e) => return Err(error_of(&e)),
            };
            let e = LogError::OffsetOutOfRange {
                offset: r.offset.0,
                start,
                end,
            };
            return Err(error_of(&e));
        }
    }
    let started = Instant::now();
    let result = reader.read(r.offset.0, max_bytes, wait).await;
    svc.metrics.read_latency.observe(started.elapsed());
    readers.lock().insert(r.stream.clone(), reader);
    let m = &svc.metrics;
    match result {
        Ok(b) => {
            m.reads.inc();
            m.read_records.add(b.count);
            let records = client::join_record_sets(&b.sets);
            m.read_bytes_bookies.add(records.len() as u64);
            Ok(Response::Records(Records {
                first_offset: Offset(b.first_offset),
                end_offset: Offset(b.end_offset),
                start_offset: Offset(b.start_offset),
                end_of_stream: b.end_of_stream,
                records,
            }))
        }
        Err(e) => {
            m.read_errors.inc();
            Err(error_of(&e))
        }
    }
}

async fn seek(svc: &Service, s: client::Seek) -> Result<Response, ResponseError> {
    let mut reader = StreamReader::new(svc.log.clone(), s.stream);
    let r = match s.by {
        SeekBy::Timestamp(t) => reader.seek_timestamp(t).await,
        SeekBy::Txid(t) => reader.seek_txid(t).await,
    };
    r.map(|o| Response::Position(Offset(o)))
        .map_err(|e| error_of(&e))
}

async fn admin_op(svc: &Service, json: &Bytes) -> Result<Response, ResponseError> {
    let req: AdminRequest = serde_json::from_slice(json)
        .map_err(|e| ResponseError::new(ErrorCode::BadRequest, format!("admin request: {e}")))?;
    let resp = admin::execute(svc, req).await.map_err(|e| error_of(&e))?;
    let body = serde_json::to_vec(&resp).expect("admin responses serialize");
    Ok(Response::Admin(Bytes::from(body)))
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Out>,
    max_frame: usize,
) {
    let mut buf = BytesMut::with_capacity(256 << 10);
    let mut written = Vec::new();
    while let Some(first) = rx.recv().await {
        encode(&first, &mut buf, max_frame);
        written.push(first);
        while buf.len() < (1 << 20) {
            match rx.try_recv() {
                Ok(more) => {
                    encode(&more, &mut buf, max_frame);
                    written.push(more);
                }
                Err(_) => break,
            }
        }
        if let Err(e) = wr.write_all(&buf).await {
            debug!(error = %e, "write failed; dropping connection");
            return;
        }
        buf.clear();
        written.clear();
    }
    let _ = wr.shutdown().await;
}

fn encode(out: &Out, buf: &mut BytesMut, max_frame: usize) {
    let r = match &out.msg {
        Ok(resp) => resp.encode(out.id, buf, max_frame),
        Err(e) => e.encode(out.op, out.id, buf, max_frame),
    };
    if let Err(e) = r {
        let err = ResponseError::new(ErrorCode::Internal, format!("answer not sendable: {e}"));
        let _ = err.encode(out.op, out.id, buf, max_frame);
    }
}
