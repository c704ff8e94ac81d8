//! The bookie's TCP server: one task per connection, requests pipelined and answered out of
//! order.
//!
//! Per connection: a reader loop cuts frames (the length is checked against the frame limit
//! before anything is allocated), requires a `hello` first, and dispatches each request. An add
//! is admitted synchronously in arrival order and then awaited in its own task, so a slow fsync
//! never stops the reader; responses go to a writer task that coalesces them into few writes.
//! In-flight request bytes per connection are bounded by a semaphore: when a client outruns the
//! disk, the reader stops reading and TCP pushes back.
//!
//! A frame that cannot be cut (too large, bad header) is answered with its error code and the
//! connection is closed, since the stream cannot be trusted to be in sync; a well-framed request
//! with a bad body is answered with an error and the connection goes on.
//!
//! Shutdown: stop accepting, stop reading, finish and answer what is in flight, close.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use dlog_api::ErrorCode;
use dlog_api::wire::bookie::{AddBatch, HelloOk, Request, Response, ResponseError};
use dlog_api::wire::{FrameCodec, FrameError, PROTOCOL_VERSION};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::bookie::Bookie;
use crate::error::BookieError;
use crate::journal::writer::Completion;

/// One response to write, with the in-flight budget it holds until written.
#[derive(Debug)]
struct Out {
    msg: OutMsg,
    _hold: Hold,
}

#[derive(Debug)]
enum OutMsg {
    Ok(u64, Response),
    Err(u8, u64, ResponseError),
}

/// Permits of the connection's in-flight budget.
#[derive(Debug, Default)]
struct Hold(Vec<tokio::sync::OwnedSemaphorePermit>);

impl Out {
    /// An answer that holds no budget (handshake and frame errors).
    fn bare(msg: OutMsg) -> Out {
        Out {
            msg,
            _hold: Hold::default(),
        }
    }
}

impl From<&BookieError> for ResponseError {
    fn from(e: &BookieError) -> Self {
        ResponseError::new(e.code(), e.to_string())
    }
}

/// How long a closing connection may take to deliver its last answers.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `bookie` on `listener` until `shutdown` is cancelled, then drains connections.
pub async fn serve(bookie: Bookie, listener: TcpListener, shutdown: CancellationToken) {
    let addr = listener.local_addr().ok();
    info!(?addr, bookie_id = %bookie.cookie().bookie_id, "bookie listening");
    let tracker = TaskTracker::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let b = bookie.clone();
                    let s = shutdown.clone();
                    tracker.spawn(
                        connection(b, stream, peer, s).instrument(info_span!("conn", %peer)),
                    );
                }
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    info!("bookie server stopped");
}

async fn connection(
    bookie: Bookie,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let max_frame = bookie.config().max_entry_len + 4096;
    let (rd, wr) = stream.into_split();
    let mut frames = FramedRead::with_capacity(rd, FrameCodec::new(max_frame), 256 << 10);
    let (tx, rx) = mpsc::unbounded_channel::<Out>();
    let mut writer = tokio::spawn(write_loop(wr, rx, max_frame));
    let budget = bookie.config().max_inflight_bytes_per_connection;
    let inflight = Arc::new(Semaphore::new(budget));
    let tasks = TaskTracker::new();
    let mut handshaken = false;
    debug!("connection open");
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
                    // Op 0: the frame could not be read far enough to know its operation.
                    let _ = tx.send(Out::bare(OutMsg::Err(
                        0,
                        id,
                        ResponseError::new(code, e.to_string()),
                    )));
                }
                warn!(error = %e, "closing connection on a bad frame");
                break;
            }
        };
        let (op, id) = (frame.op, frame.request_id);
        let req = match Request::decode(&frame) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Out::bare(OutMsg::Err(
                    op,
                    id,
                    ResponseError::new(e.code(), e.to_string()),
                )));
                continue;
            }
        };
        if !handshaken {
            match req {
                Request::Hello(h) => {
                    if h.min_version > PROTOCOL_VERSION || h.max_version < PROTOCOL_VERSION {
                        let msg = format!(
                            "client speaks versions {}..={}, bookie speaks {PROTOCOL_VERSION}",
                            h.min_version, h.max_version
                        );
                        let _ = tx.send(Out::bare(OutMsg::Err(
                            op,
                            id,
                            ResponseError::new(ErrorCode::UnsupportedVersion, msg),
                        )));
                        break;
                    }
                    if !h.auth_method.is_empty() {
                        let msg =
                            format!("authentication method {:?} is not supported", h.auth_method);
                        let _ = tx.send(Out::bare(OutMsg::Err(
                            op,
                            id,
                            ResponseError::new(ErrorCode::Unauthenticated, msg),
                        )));
                        break;
                    }
                    handshaken = true;
                    debug!(client = %h.client, "handshake");
                    let _ = tx.send(Out::bare(OutMsg::Ok(
                        id,
                        Response::Hello(HelloOk {
                            version: PROTOCOL_VERSION,
                            bookie_id: bookie.cookie().bookie_id.to_string(),
                            instance_id: bookie.cookie().instance_id,
                            max_frame_len: max_frame as u32,
                        }),
                    )));
                }
                _ => {
                    let _ = tx.send(Out::bare(OutMsg::Err(
                        op,
                        id,
                        ResponseError::new(ErrorCode::HandshakeRequired, "send hello first"),
                    )));
                    break;
                }
            }
            continue;
        }
        // Bound the memory this connection holds: request bytes plus a response allowance.
        let cost = (frame.body.len() + 512).min(budget) as u32;
        let Ok(permit) = inflight.clone().acquire_many_owned(cost).await else {
            break;
        };
        let tx2 = tx.clone();
        // The permit travels with the answer and is released once the answer is written, so
        // a client that stops reading stops being read.
        let reply = move |r: Result<Response, BookieError>, hold: Hold| {
            let msg = match r {
                Ok(resp) => OutMsg::Ok(id, resp),
                Err(e) => {
                    debug!(op, error = %e, "request failed");
                    OutMsg::Err(op, id, (&e).into())
                }
            };
            let _ = tx2.send(Out { msg, _hold: hold });
        };
        let hold = Hold(vec![permit]);
        match req {
            Request::Hello(_) => reply(
                Err(BookieError::BadRequest("hello sent twice".into())),
                hold,
            ),
            Request::Add(a) => {
                let (ledger, entry) = (a.ledger, a.entry);
                let batch = AddBatch {
                    ledger,
                    epoch: a.epoch,
                    lac: a.lac,
                    recovery: a.recovery,
                    entries: vec![(entry, a.data)],
                };
                // Answered from the journal's apply thread once durable: no task per add.
                let done = Completion::Callback(Box::new(move |r| {
                    reply(r.map(|()| Response::Added { ledger, entry }), hold);
                }));
                add_or_refuse(&bookie, batch, done);
            }
            Request::AddBatch(b) => {
                let (ledger, count) = (b.ledger, b.entries.len() as u32);
                let done = Completion::Callback(Box::new(move |r| {
                    reply(r.map(|()| Response::AddedBatch { ledger, count }), hold);
                }));
                add_or_refuse(&bookie, b, done);
            }
            Request::Fence(f) => match bookie.fence(f.ledger, f.epoch) {
                Ok(done) => {
                    tasks.spawn(async move { reply(done.await.map(Response::Fenced), hold) });
                }
                Err(e) => reply(Err(e), hold),
            },
            Request::WriteLac(w) => match bookie.write_lac(w) {
                Ok(done) => {
                    tasks.spawn(async move {
                        reply(done.await.map(|()| Response::LacWritten), hold);
                    });
                }
                Err(e) => reply(Err(e), hold),
            },
            Request::Delete(ledger) => match bookie.delete(ledger) {
                Ok(done) => {
                    tasks.spawn(async move { reply(done.await.map(|()| Response::Deleted), hold) });
                }
                Err(e) => reply(Err(e), hold),
            },
            Request::Read(r) => {
                let b = bookie.clone();
                let sem = inflight.clone();
                tasks.spawn(async move {
                    let mut hold = hold;
                    // Reserve the entry's bytes before loading it: at most the connection's
                    // budget of entries is in memory, however fast reads are asked for.
                    let reserve = |len: usize| {
                        let sem = sem.clone();
                        async move { sem.acquire_many_owned(len.min(budget) as u32).await.ok() }
                    };
                    let r = b.read_reserving(r, reserve).await;
                    let r = r.map(|(ok, extra)| {
                        hold.0.extend(extra);
                        Response::Entry(ok)
                    });
                    reply(r, hold);
                });
            }
            Request::ReadLac(r) => {
                let b = bookie.clone();
                let s = shutdown.clone();
                tasks.spawn(async move {
                    let result = tokio::select! {
                        r = b.read_lac(r) => r,
                        _ = s.cancelled() => Err(BookieError::ShuttingDown),
                    };
                    reply(result.map(Response::Lac), hold);
                });
            }
            Request::Info => reply(Ok(Response::Info(bookie.info())), hold),
        }
    }
    tasks.close();
    drop(tx);
    // Answer what is in flight, but not forever: a client that stopped reading (or vanished
    // behind a partition) must not hold up a shutdown.
    let drain = async {
        tasks.wait().await;
        let _ = (&mut writer).await;
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        warn!("connection did not drain in {DRAIN_TIMEOUT:?}; closing it");
        writer.abort();
    }
    debug!(%peer, "connection closed");
}

/// Admits an add batch; a refusal is answered through the same completion.
fn add_or_refuse(bookie: &Bookie, b: AddBatch, done: Completion) {
    if let Err((e, done)) = bookie.add_batch_then(b, done) {
        done.send(Err(e));
    }
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Out>,
    max_frame: usize,
) {
    let mut buf = BytesMut::with_capacity(256 << 10);
    let mut written = Vec::new();
    while let Some(first) = rx.recv().await {
        encode(&first.msg, &mut buf, max_frame);
        written.push(first);
        while buf.len() < (1 << 20) {
            match rx.try_recv() {
                Ok(more) => {
                    encode(&more.msg, &mut buf, max_frame);
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
        // Their budget is free again only now.
        written.clear();
    }
    let _ = wr.shutdown().await;
}

fn encode(out: &OutMsg, buf: &mut BytesMut, max_frame: usize) {
    let r = match out {
        OutMsg::Ok(id, resp) => resp.encode(*id, buf, max_frame),
        OutMsg::Err(op, id, err) => Response::encode_error(*op, *id, err, buf, max_frame),
    };
    if let Err(e) = r {
        // Only a response larger than the frame limit can fail; answer with an error instead.
        let (op, id) = match out {
            OutMsg::Ok(id, resp) => (resp.op(), *id),
            OutMsg::Err(op, id, _) => (*op, *id),
        };
        let err = ResponseError::new(ErrorCode::Internal, format!("response not sendable: {e}"));
        let _ = Response::encode_error(op, id, &err, buf, max_frame);
    }
}
