//! Round-trip, golden-byte and hostile-input tests of the bookie messages.

use super::*;
use crate::wire::frame::write_frame;
use crate::wire::{Frame, FrameCodec, FrameError, FrameKind};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

const MAX: usize = 1 << 20;

fn requests() -> Vec<Request> {
    vec![
        Request::Hello(Hello {
            min_version: 1,
            max_version: 1,
            client: "bench".into(),
            auth_method: String::new(),
            auth_data: Bytes::new(),
        }),
        Request::Add(AddEntry {
            ledger: LedgerId(1),
            entry: EntryId(2),
            epoch: Epoch(3),
            lac: None,
            recovery: true,
            data: Bytes::from_static(b"entry bytes"),
        }),
        Request::Read(ReadEntry {
            ledger: LedgerId(1),
            entry: EntryId(2),
            fence: Some(Epoch(4)),
        }),
        Request::Read(ReadEntry {
            ledger: LedgerId(1),
            entry: EntryId(2),
            fence: None,
        }),
        Request::ReadLac(ReadLac {
            ledger: LedgerId(5),
            known: Some(EntryId(0)),
            wait_ms: 100,
        }),
        Request::Fence(Fence {
            ledger: LedgerId(5),
            epoch: Epoch(9),
        }),
        Request::Delete(LedgerId(5)),
        Request::Info,
        Request::WriteLac(WriteLac {
            ledger: LedgerId(5),
            epoch: Epoch(1),
            lac: EntryId(7),
        }),
        Request::AddBatch(AddBatch {
            ledger: LedgerId(5),
            epoch: Epoch(2),
            lac: Some(EntryId(3)),
            recovery: false,
            entries: vec![
                (EntryId(4), Bytes::from_static(b"four")),
                (EntryId(5), Bytes::from_static(b"")),
                (EntryId(6), Bytes::from_static(b"six!")),
            ],
        }),
    ]
}

fn responses() -> Vec<Response> {
    let info = LacInfo {
        lac: Some(EntryId(4)),
        last_entry: None,
        fence_epoch: Epoch(2),
    };
    vec![
        Response::Hello(HelloOk {
            version: 1,
            bookie_id: "b-1".into(),
            instance_id: 99,
            max_frame_len: 1 << 20,
        }),
        Response::Added {
            ledger: LedgerId(1),
            entry: EntryId(2),
        },
        Response::Entry(ReadEntryOk {
            ledger: LedgerId(1),
            entry: EntryId(2),
            lac: Some(EntryId(1)),
            data: Bytes::from_static(b"data"),
        }),
        Response::Lac(info),
        Response::Fenced(info),
        Response::Deleted,
        Response::Info(BookieInfo {
            bookie_id: "b-1".into(),
            instance_id: 7,
            state: BookieState::ReadOnly,
            damaged: true,
            disk_total: 100,
            disk_used: 96,
            journal_bytes: 10,
            ledgers: 3,
            state_reason: "disk usage 96% above 95%".into(),
        }),
        Response::LacWritten,
        Response::AddedBatch {
            ledger: LedgerId(5),
            count: 3,
        },
    ]
}

fn one_frame(buf: &mut BytesMut) -> Frame {
    let f = FrameCodec::new(MAX).decode(buf).unwrap().unwrap();
    assert!(buf.is_empty());
    f
}

#[test]
fn requests_roundtrip() {
    for (i, r) in requests().into_iter().enumerate() {
        let mut buf = BytesMut::new();
        r.encode(i as u64, &mut buf, MAX).unwrap();
        let f = one_frame(&mut buf);
        assert_eq!(f.request_id, i as u64);
        assert_eq!(Request::decode(&f).unwrap(), r);
    }
}

#[test]
fn responses_roundtrip() {
    for r in responses() {
        let mut buf = BytesMut::new();
        r.encode(5, &mut buf, MAX).unwrap();
        assert_eq!(Response::decode(&one_frame(&mut buf)).unwrap().unwrap(), r);
    }
    let err = ResponseError::new(ErrorCode::Fenced, "ledger 5 fenced at epoch 9");
    let mut buf = BytesMut::new();
    Response::encode_error(op::ADD, 5, &err, &mut buf, MAX).unwrap();
    assert_eq!(
        Response::decode(&one_frame(&mut buf)).unwrap().unwrap_err(),
        err
    );
}

/// Golden bytes of an add request: the wire format must not drift.
#[test]
fn golden_add_frame() {
    let mut buf = BytesMut::new();
    Request::Add(AddEntry {
        ledger: LedgerId(1),
        entry: EntryId(2),
        epoch: Epoch(3),
        lac: Some(EntryId(1)),
        recovery: false,
        data: Bytes::from_static(b"xy"),
    })
    .encode(0x0102, &mut buf, MAX)
    .unwrap();
    let expected: &[u8] = &[
        47, 0, 0, 0, // len
        1, 0, 2, 0, // version, kind, op, flags
        2, 1, 0, 0, 0, 0, 0, 0, // request id
        1, 0, 0, 0, 0, 0, 0, 0, // ledger
        2, 0, 0, 0, 0, 0, 0, 0, // entry
        3, 0, 0, 0, 0, 0, 0, 0, // epoch
        1, 0, 0, 0, 0, 0, 0, 0, // lac
        0, b'x', b'y', // flags, data
    ];
    assert_eq!(&buf[..], expected);
}

#[test]
fn oversized_add_is_refused_at_encode() {
    let mut buf = BytesMut::new();
    let r = Request::Add(AddEntry {
        ledger: LedgerId(1),
        entry: EntryId(0),
        epoch: Epoch(0),
        lac: None,
        recovery: false,
        data: Bytes::from(vec![0u8; 100]),
    });
    assert!(matches!(
        r.encode(1, &mut buf, 64),
        Err(FrameError::TooLarge { .. })
    ));
    assert!(buf.is_empty(), "nothing half-written");
}

#[test]
fn batch_counts_are_bounded_before_allocation() {
    for count in [0u32, 2, MAX_BATCH_ENTRIES as u32 + 1, u32::MAX] {
        let mut body = BytesMut::new();
        body.put_u64_le(1);
        body.put_u64_le(1);
        body.put_u64_le(u64::MAX);
        body.put_u8(0);
        body.put_u32_le(count);
        body.put_slice(&[0u8; 12]); // room for one empty entry only
        let mut buf = BytesMut::new();
        write_frame(&mut buf, FrameKind::Request, op::ADD_BATCH, 1, &body, MAX).unwrap();
        let f = one_frame(&mut buf);
        assert_eq!(
            Request::decode(&f).unwrap_err().code(),
            ErrorCode::BadFrame,
            "count {count}"
        );
    }
}

#[test]
fn unknown_op_and_trailing_bytes_are_refused() {
    let mut buf = BytesMut::new();
    write_frame(&mut buf, FrameKind::Request, 200, 1, b"", MAX).unwrap();
    let f = one_frame(&mut buf);
    assert_eq!(
        Request::decode(&f).unwrap_err().code(),
        ErrorCode::UnknownOp
    );
    let mut buf = BytesMut::new();
    write_frame(&mut buf, FrameKind::Request, op::DELETE, 1, &[0; 9], MAX).unwrap();
    let f = one_frame(&mut buf);
    assert_eq!(Request::decode(&f).unwrap_err().code(), ErrorCode::BadFrame);
}

proptest! {
    #[test]
    fn random_bodies_never_panic(op in any::<u8>(), kind in 0u8..2, body in proptest::collection::vec(any::<u8>(), 0..128)) {
        let f = Frame {
            kind: if kind == 0 { FrameKind::Request } else { FrameKind::Response },
            op,
            request_id: 1,
            body: Bytes::from(body),
        };
        let _ = Request::decode(&f);
        let _ = Response::decode(&f);
    }

    #[test]
    fn mutated_frames_never_panic(which in any::<usize>(), pos in any::<usize>(), val in any::<u8>(), cut in any::<usize>()) {
        let reqs = requests();
        let mut buf = BytesMut::new();
        reqs[which % reqs.len()].encode(1, &mut buf, MAX).unwrap();
        let mut raw = buf.to_vec();
        let i = pos % raw.len();
        raw[i] = val;
        raw.truncate(cut % (raw.len() + 1));
        let mut b = BytesMut::from(&raw[..]);
        let mut codec = FrameCodec::new(MAX);
        while let Ok(Some(f)) = codec.decode(&mut b) {
            let _ = Request::decode(&f);
            let _ = Response::decode(&f);
        }
    }

    #[test]
    fn mutated_responses_never_panic(which in any::<usize>(), pos in any::<usize>(), val in any::<u8>()) {
        let resps = responses();
        let mut buf = BytesMut::new();
        resps[which % resps.len()].encode(1, &mut buf, MAX).unwrap();
        let mut raw = buf.to_vec();
        let i = 4 + pos % (raw.len() - 4);
        raw[i] = val;
        let mut b = BytesMut::from(&raw[..]);
        if let Ok(Some(f)) = FrameCodec::new(MAX).decode(&mut b) {
            let _ = Response::decode(&f);
        }
    }
}
