//! A small in-process service node for unit tests.
//!
//! [`FakeServer`] listens on a free local port and speaks the client protocol through the
//! codec: it answers hellos itself and hands every other request, in arrival order, to the
//! test's handler, which decides synchronously (so state changes follow arrival order) and
//! returns a future of what to do: answer (possibly after a delay, so answers can come out of
//! order), close the connection, or never answer. [`FakeLog`] is an in-memory stream with
//! idempotent appends and reads of whole batches, for handlers that need one.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use dlog_api::record::{RecordSetLimits, decode_record_set};
use dlog_api::wire::client::{
    Append, Appended, HelloOk, Read, Records, Request, Response, ResponseError, join_record_sets,
};
use dlog_api::wire::{DEFAULT_MAX_FRAME_LEN, FrameCodec, PROTOCOL_VERSION};
use dlog_api::{ErrorCode, Offset, Record};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

/// The payload limit the fake announces.
pub(crate) const MAX_RECORD_BYTES: u32 = 1 << 20;

/// What the fake does with a request.
#[derive(Debug)]
pub(crate) enum Action {
    Reply(Result<Response, ResponseError>),
    /// Close the connection without answering.
    Close,
    /// Never answer.
    Ignore,
}

/// A request as the handler sees it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// Connections are numbered 0, 1, 2 … in the order they were accepted.
    pub(crate) conn: usize,
    pub(crate) request_id: u64,
    pub(crate) request: Request,
}

pub(crate) type Reaction = Pin<Box<dyn Future<Output = Action> + Send>>;

/// Answers at once.
pub(crate) fn now(action: Action) -> Reaction {
    Box::pin(async move { action })
}

/// Answers with `response`.
pub(crate) fn reply(response: Result<Response, ResponseError>) -> Reaction {
    now(Action::Reply(response))
}

#[derive(Debug)]
pub(crate) struct FakeServer {
    pub(crate) addr: String,
    /// Every request received (hellos excluded), in arrival order.
    pub(crate) calls: Arc<Mutex<Vec<Call>>>,
    stop: CancellationToken,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl FakeServer {
    pub(crate) async fn start<H>(handler: H) -> FakeServer
    where
        H: Fn(Call) -> Reaction + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let handler = Arc::new(handler);
        let (c, s) = (calls.clone(), stop.clone());
        tokio::spawn(async move {
            let mut conn = 0;
            loop {
                let accepted = tokio::select! {
                    _ = s.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((socket, _)) = accepted else { return };
                tokio::spawn(serve(
                    conn,
                    socket,
                    handler.clone(),
                    c.clone(),
                    s.child_token(),
                ));
                conn += 1;
            }
        });
        FakeServer { addr, calls, stop }
    }

    /// The requests received so far.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }

    /// The append requests received so far: (connection, producer id, sequence).
    pub(crate) fn appends(&self) -> Vec<(usize, u64, u64)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c.request {
                Request::Append(a) => Some((c.conn, a.producer_id, a.sequence)),
                _ => None,
            })
            .collect()
    }
}

async fn serve<H>(
    conn: usize,
    socket: tokio::net::TcpStream,
    handler: Arc<H>,
    calls: Arc<Mutex<Vec<Call>>>,
    stop: CancellationToken,
) where
    H: Fn(Call) -> Reaction + Send + Sync + 'static,
{
    let (rd, mut wr) = socket.into_split();
    let mut rd = FramedRead::new(rd, FrameCodec::new(DEFAULT_MAX_FRAME_LEN));
    let (tx, mut rx) = mpsc::unbounded_channel::<BytesMut>();
    let s = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = s.cancelled() => break,
                frame = rx.recv() => match frame {
                    Some(f) => if wr.write_all(&f).await.is_err() { break },
                    None => break,
                },
            }
        }
        let _ = wr.shutdown().await;
    });
    loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => return,
            f = rd.next() => match f {
                Some(Ok(f)) => f,
                _ => { stop.cancel(); return; }
            },
        };
        let Ok(request) = Request::decode(&frame) else {
            stop.cancel();
            return;
        };
        let id = frame.request_id;
        if let Request::Hello(_) = request {
            let mut buf = BytesMut::new();
            Response::Hello(HelloOk {
                version: PROTOCOL_VERSION,
                server_id: format!("fake-{conn}"),
                max_frame_len: DEFAULT_MAX_FRAME_LEN as u32,
                max_record_bytes: MAX_RECORD_BYTES,
            })
            .encode(id, &mut buf, usize::MAX)
            .expect("encode hello");
            let _ = tx.send(buf);
            continue;
        }
        let call = Call {
            conn,
            request_id: id,
            request,
        };
        calls.lock().expect("calls").push(call.clone());
        let op = call.request.op();
        let reaction = handler(call);
        let (tx, stop) = (tx.clone(), stop.clone());
        tokio::spawn(async move {
            match reaction.await {
                Action::Reply(answer) => {
                    let mut buf = BytesMut::new();
                    match answer {
                        Ok(r) => r.encode(id, &mut buf, usize::MAX).expect("encode"),
                        Err(e) => e.encode(op, id, &mut buf, usize::MAX).expect("encode"),
                    }
                    let _ = tx.send(buf);
                }
                Action::Close => stop.cancel(),
                Action::Ignore => {}
            }
        });
    }
}

/// One stored batch.
#[derive(Debug, Clone)]
struct StoredBatch {
    first: u64,
    count: u32,
    set: Bytes,
}

/// An in-memory stream: idempotent appends, reads of whole batches, long-polls.
#[derive(Debug, Default)]
pub(crate) struct FakeLog {
    state: Mutex<LogState>,
    appended: Notify,
}

#[derive(Debug, Default)]
struct LogState {
    batches: Vec<StoredBatch>,
    end: u64,
    /// Per producer: (sequence, first offset, count) of each batch.
    producers: HashMap<u64, Vec<(u64, u64, u32)>>,
}

impl FakeLog {
    pub(crate) fn new() -> Arc<FakeLog> {
        Arc::new(FakeLog::default())
    }

    /// Appends as the service does: a known batch gets its offsets back, a batch that skips
    /// ahead of a known producer's next sequence is refused.
    pub(crate) fn append(&self, a: &Append) -> Result<Response, ResponseError> {
        let limits = RecordSetLimits::default();
        let records = decode_record_set(a.records.clone(), &limits)
            .map_err(|e| ResponseError::new(ErrorCode::BadRequest, e.to_string()))?;
        let count = records.len() as u32;
        let mut st = self.state.lock().expect("log");
        if a.producer_id != 0 {
            let batches = st.producers.entry(a.producer_id).or_default();
            if let Some(&(_, first, n)) = batches.iter().find(|(s, _, _)| *s == a.sequence) {
                return Ok(Response::Appended(Appended {
                    first_offset: Offset(first),
                    count: n,
                    duplicate: true,
                }));
            }
            if let Some(&(s, _, n)) = batches.last()
                && a.sequence != s + u64::from(n)
            {
                return Err(ResponseError::new(
                    ErrorCode::SequenceGap,
                    format!("sequence {} after {}", a.sequence, s + u64::from(n)),
                ));
            }
        }
        let first = st.end;
        st.batches.push(StoredBatch {
            first,
            count,
            set: a.records.clone(),
        });
        st.end += u64::from(count);
        if a.producer_id != 0 {
            st.producers
                .entry(a.producer_id)
                .or_default()
                .push((a.sequence, first, count));
        }
        drop(st);
        self.appended.notify_waiters();
        Ok(Response::Appended(Appended {
            first_offset: Offset(first),
            count,
            duplicate: false,
        }))
    }

    /// Answers a read at once.
    pub(crate) fn read(&self, r: &Read) -> Result<Response, ResponseError> {
        let st = self.state.lock().expect("log");
        if r.offset.0 > st.end {
            return Err(ResponseError::new(
                ErrorCode::OffsetOutOfRange,
                format!("offset {} is past the end {}", r.offset, st.end),
            ));
        }
        let mut sets = Vec::new();
        let mut first = None;
        let mut bytes = 0usize;
        for b in &st.batches {
            if b.first + u64::from(b.count) <= r.offset.0 {
                continue;
            }
            if bytes >= r.max_bytes as usize {
                break;
            }
            first.get_or_insert(b.first);
            bytes += b.set.len();
            sets.push(b.set.clone());
        }
        Ok(Response::Records(Records {
            first_offset: Offset(first.unwrap_or(r.offset.0)),
            end_offset: Offset(st.end),
            start_offset: Offset(0),
            end_of_stream: false,
            records: join_record_sets(&sets),
        }))
    }

    /// Answers a read, waiting up to its `wait_ms` for records when at the end.
    pub(crate) fn long_poll(self: &Arc<Self>, r: Read) -> Reaction {
        let log = self.clone();
        Box::pin(async move {
            let deadline =
                tokio::time::Instant::now() + std::time::Duration::from_millis(r.wait_ms.into());
            loop {
                let notified = log.appended.notified();
                let at_end = r.offset.0 >= log.end();
                if !at_end || tokio::time::Instant::now() >= deadline {
                    return Action::Reply(log.read(&r));
                }
                let _ = tokio::time::timeout_at(deadline, notified).await;
            }
        })
    }

    pub(crate) fn end(&self) -> u64 {
        self.state.lock().expect("log").end
    }

    /// Every record stored, in offset order.
    pub(crate) fn records(&self) -> Vec<Record> {
        let st = self.state.lock().expect("log");
        st.batches
            .iter()
            .flat_map(|b| {
                decode_record_set(b.set.clone(), &RecordSetLimits::default()).expect("decode")
            })
            .collect()
    }
}

/// A handler serving `log` for appends and reads (long-polls included).
pub(crate) fn serve_log(log: Arc<FakeLog>) -> impl Fn(Call) -> Reaction + Send + Sync + 'static {
    move |call| match call.request {
        Request::Append(a) => reply(log.append(&a)),
        Request::Read(r) => log.long_poll(r),
        other => reply(Err(ResponseError::new(
            ErrorCode::UnknownOp,
            format!("the fake does not serve op {}", other.op()),
        ))),
    }
}
