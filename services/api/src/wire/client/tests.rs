//! Round-trip, golden-byte and hostile-input tests of the client messages.

use super::*;
use crate::cursor::put_string;
use crate::wire::{Frame, FrameCodec, FrameError, FrameKind, bookie};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

const MAX: usize = 1 << 20;

fn stream(s: &str) -> StreamName {
    s.parse().unwrap()
}

fn read_request() -> Request {
    Request::Read(Read {
        stream: stream("ns/orders"),
        offset: Offset(5),
        max_bytes: 1 << 16,
        wait_ms: 1000,
    })
}

fn request_frame(r: &Request) -> Frame {
    let mut buf = BytesMut::new();
    r.encode(9, &mut buf, MAX).unwrap();
    one_frame(&mut buf)
}

fn one_frame(buf: &mut BytesMut) -> Frame {
    let f = FrameCodec::new(MAX).decode(buf).unwrap().unwrap();
    assert!(buf.is_empty());
    f
}

fn frame(kind: FrameKind, op: u8, body: &[u8]) -> Frame {
    Frame {
        kind,
        op,
        request_id: 1,
        body: Bytes::copy_from_slice(body),
    }
}

fn request_error(op: u8, body: &[u8]) -> DecodeError {
    match Request::decode(&frame(FrameKind::Request, op, body)) {
        Err(RequestDecodeError::Bad(e)) => e,
        other => panic!("expected a decode error, got {other:?}"),
    }
}

fn response_error(op: u8, body: &[u8]) -> DecodeError {
    decode_response(&frame(FrameKind::Response, op, body)).unwrap_err()
}

/// What kind of decode error `e` is, and the field it names.
fn what(e: &DecodeError) -> (&'static str, &'static str) {
    match e {
        DecodeError::Truncated { field, .. } => ("truncated", field),
        DecodeError::TooLarge { field, .. } => ("too large", field),
        DecodeError::Invalid { field, .. } => ("invalid", field),
        DecodeError::TrailingBytes { field, .. } => ("trailing", field),
    }
}

/// Golden bytes of an append request: the wire format must not drift.
#[test]
fn golden_append_request() {
    let mut buf = BytesMut::new();
    Request::Append(Append {
        stream: stream("ns/s"),
        producer_id: 7,
        sequence: 9,
        records: Bytes::from_static(b"rs"),
    })
    .encode(0x0102, &mut buf, MAX)
    .unwrap();
    let expected: &[u8] = &[
        37, 0, 0, 0, // len
        1, 0, 2, 0, // version, kind, op, flags
        2, 1, 0, 0, 0, 0, 0, 0, // request id
        4, 0, b'n', b's', b'/', b's', // stream
        7, 0, 0, 0, 0, 0, 0, 0, // producer id
        9, 0, 0, 0, 0, 0, 0, 0, // sequence
        0, b'r', b's', // flags, record set
    ];
    assert_eq!(&buf[..], expected);
}

#[test]
fn golden_read_request() {
    let mut buf = BytesMut::new();
    Request::Read(Read {
        stream: stream("ns/s"),
        offset: Offset(5),
        max_bytes: 0x100,
        wait_ms: 1000,
    })
    .encode(3, &mut buf, MAX)
    .unwrap();
    let expected: &[u8] = &[
        35, 0, 0, 0, // len
        1, 0, 3, 0, // version, kind, op, flags
        3, 0, 0, 0, 0, 0, 0, 0, // request id
        4, 0, b'n', b's', b'/', b's', // stream
        5, 0, 0, 0, 0, 0, 0, 0, // offset
        0, 1, 0, 0, // max bytes
        0xe8, 3, 0, 0, // wait ms
        0, // flags
    ];
    assert_eq!(&buf[..], expected);
}

#[test]
fn golden_records_response() {
    let mut buf = BytesMut::new();
    Response::Records(Records {
        first_offset: Offset(3),
        end_offset: Offset(10),
        start_offset: Offset(1),
        end_of_stream: true,
        records: Bytes::from_static(b"xyz"),
    })
    .encode(3, &mut buf, MAX)
    .unwrap();
    let expected: &[u8] = &[
        42, 0, 0, 0, // len
        1, 1, 3, 0, // version, kind, op, flags
        3, 0, 0, 0, 0, 0, 0, 0, // request id
        0, 0, // status ok
        3, 0, 0, 0, 0, 0, 0, 0, // first offset
        10, 0, 0, 0, 0, 0, 0, 0, // end offset
        1, 0, 0, 0, 0, 0, 0, 0, // start offset
        1, b'x', b'y', b'z', // flags (end of stream), record set
    ];
    assert_eq!(&buf[..], expected);
}

#[test]
fn golden_not_owner_error() {
    let mut buf = BytesMut::new();
    ResponseError::not_owner(Some("10.0.0.2:7000".into()), "moved")
        .encode(op::APPEND, 1, &mut buf, MAX)
        .unwrap();
    let expected: &[u8] = &[
        36, 0, 0, 0, // len
        1, 1, 2, 0, // version, kind, op, flags
        1, 0, 0, 0, 0, 0, 0, 0, // request id
        62, 0, // status: not owner
        5, 0, b'm', b'o', b'v', b'e', b'd', // message
        13, 0, b'1', b'0', b'.', b'0', b'.', b'0', b'.', b'2', b':', b'7', b'0', b'0', b'0',
    ];
    assert_eq!(&buf[..], expected);
    let back = decode_response(&one_frame(&mut buf)).unwrap().unwrap_err();
    assert_eq!(back.owner.as_deref(), Some("10.0.0.2:7000"));
}

/// Other codes carry no owner field, and an unknown owner travels as the empty string.
#[test]
fn owner_field_only_with_not_owner() {
    let mut buf = BytesMut::new();
    let mut err = ResponseError::new(ErrorCode::NoSuchStream, "no stream ns/s");
    err.owner = Some("ignored".into());
    err.encode(op::READ, 1, &mut buf, MAX).unwrap();
    assert_eq!(buf.len(), 4 + 12 + 2 + 2 + 14);
    let back = decode_response(&one_frame(&mut buf)).unwrap().unwrap_err();
    assert_eq!(
        back,
        ResponseError::new(ErrorCode::NoSuchStream, "no stream ns/s")
    );

    assert_eq!(
        ResponseError::not_owner(Some(String::new()), "x").owner,
        None
    );
    let mut buf = BytesMut::new();
    ResponseError::not_owner(None, "moving")
        .encode(op::APPEND, 1, &mut buf, MAX)
        .unwrap();
    assert_eq!(&buf[buf.len() - 2..], &[0, 0]);
    let back = decode_response(&one_frame(&mut buf)).unwrap().unwrap_err();
    assert_eq!(back, ResponseError::not_owner(None, "moving"));
}

/// The hello is the bookie protocol's, byte for byte.
#[test]
fn hello_is_the_bookie_hello() {
    let hello = Hello {
        min_version: 1,
        max_version: 2,
        client: "cli".into(),
        auth_method: "token".into(),
        auth_data: Bytes::from_static(b"secret"),
    };
    let mut client = BytesMut::new();
    Request::Hello(hello.clone())
        .encode(4, &mut client, MAX)
        .unwrap();
    let mut bookie = BytesMut::new();
    bookie::Request::Hello(hello.clone())
        .encode(4, &mut bookie, MAX)
        .unwrap();
    assert_eq!(client, bookie);
    assert_eq!(
        Request::decode(&one_frame(&mut client)).unwrap(),
        Request::Hello(hello)
    );
}

#[test]
fn unknown_flag_bits_are_refused() {
    let mut append = request_frame(&Request::Append(Append {
        stream: stream("a/b"),
        producer_id: 1,
        sequence: 2,
        records: Bytes::new(),
    }))
    .body
    .to_vec();
    let flags_at = append.len() - 1;
    append[flags_at] = 1;
    let e = request_error(op::APPEND, &append);
    assert_eq!(what(&e), ("invalid", "append flags"));

    let mut read = request_frame(&read_request()).body.to_vec();
    let flags_at = read.len() - 1;
    read[flags_at] = 0x80;
    assert_eq!(
        what(&request_error(op::READ, &read)),
        ("invalid", "read flags")
    );

    let mut appended = vec![0, 0];
    appended.extend_from_slice(&[0; 12]);
    appended.push(2);
    let e = response_error(op::APPEND, &appended);
    assert_eq!(what(&e), ("invalid", "appended flags"));

    let mut records = vec![0, 0];
    records.extend_from_slice(&[0; 24]);
    records.push(3);
    let e = response_error(op::READ, &records);
    assert_eq!(what(&e), ("invalid", "records flags"));
}

#[test]
fn seek_by_must_be_known() {
    for by in [0u8, 3, 255] {
        let mut body = BytesMut::new();
        put_stream(&mut body, &stream("a/b"));
        body.put_u8(by);
        body.put_u64_le(1);
        let e = request_error(op::SEEK, &body);
        assert_eq!(what(&e), ("invalid", "seek by"), "by {by}");
    }
}

#[test]
fn bad_stream_names_are_refused_naming_the_field() {
    for name in ["no-slash", "a/", "/b", "a/b/c", "a b/c", "../x", ""] {
        let mut body = BytesMut::new();
        put_string(&mut body, name);
        body.put_u64_le(0);
        body.put_u64_le(0);
        body.put_u8(0);
        let e = request_error(op::APPEND, &body);
        assert_eq!(what(&e), ("invalid", "append stream"), "{name:?}: {e}");
    }
    let mut long = BytesMut::new();
    put_string(&mut long, &format!("a/{}", "b".repeat(MAX_STRING)));
    let e = request_error(op::LOOKUP, &long);
    assert_eq!(what(&e), ("too large", "lookup stream"));
}

#[test]
fn over_long_strings_are_refused_and_unknown_codes_kept() {
    let mut owner = BytesMut::new();
    owner.put_u16_le(0);
    put_string(&mut owner, &"h".repeat(MAX_STRING + 1));
    owner.put_u64_le(1);
    let e = response_error(op::LOOKUP, &owner);
    assert_eq!(what(&e), ("too large", "lookup owner"));

    let mut unknown = BytesMut::new();
    unknown.put_u16_le(1000);
    put_string(&mut unknown, "from the future");
    unknown.put_u64_le(7); // whatever a newer code carries
    let f = frame(FrameKind::Response, op::READ, &unknown);
    let e = decode_response(&f).unwrap().unwrap_err();
    assert_eq!(e.code, ErrorCode::Internal);
    assert!(e.message.contains("error code 1000") && e.message.contains("from the future"));
}

#[test]
fn admin_json_is_bounded() {
    let ok = Request::decode(&frame(
        FrameKind::Request,
        op::ADMIN,
        &vec![b' '; MAX_ADMIN_JSON],
    ));
    assert!(ok.is_ok());
    let e = request_error(op::ADMIN, &vec![b' '; MAX_ADMIN_JSON + 1]);
    assert_eq!(what(&e), ("too large", "admin json"));
}

#[test]
fn trailing_bytes_unknown_ops_and_wrong_kinds_are_refused() {
    let mut read = request_frame(&read_request()).body.to_vec();
    read.push(0);
    assert_eq!(
        what(&request_error(op::READ, &read)),
        ("trailing", "request")
    );
    let unknown = Request::decode(&frame(FrameKind::Request, 200, b"")).unwrap_err();
    assert_eq!(unknown.code(), ErrorCode::UnknownOp);
    let wrong = Request::decode(&frame(FrameKind::Response, op::LOOKUP, b"")).unwrap_err();
    assert_eq!(wrong.code(), ErrorCode::BadFrame);
    assert_eq!(
        what(&response_error(200, &[0, 0])),
        ("invalid", "response op")
    );
    let req = decode_response(&frame(FrameKind::Request, op::SEEK, &[0; 10])).unwrap_err();
    assert_eq!(what(&req), ("invalid", "frame kind"));
}

#[test]
fn oversized_append_is_refused_at_encode() {
    let mut buf = BytesMut::new();
    let r = Request::Append(Append {
        stream: stream("a/b"),
        producer_id: 0,
        sequence: 0,
        records: Bytes::from(vec![0u8; 100]),
    });
    assert!(matches!(
        r.encode(1, &mut buf, 64),
        Err(FrameError::TooLarge { .. })
    ));
    assert!(buf.is_empty(), "nothing half-written");
}

fn arb_stream() -> impl Strategy<Value = StreamName> {
    let part = "[A-Za-z0-9._-]{1,12}".prop_filter("not . or ..", |s| s != "." && s != "..");
    (part.clone(), part).prop_map(|(ns, name)| StreamName::new(&ns, &name).unwrap())
}

fn arb_bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

fn arb_seek_by() -> impl Strategy<Value = SeekBy> {
    prop_oneof![
        any::<i64>().prop_map(SeekBy::Timestamp),
        any::<u64>().prop_map(SeekBy::Txid),
    ]
}

fn arb_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<[u8; 2]>(), "\\PC{0,16}", "[a-z]{0,8}", arb_bytes()).prop_map(
            |([min_version, max_version], client, auth_method, auth_data)| {
                Request::Hello(Hello {
                    min_version,
                    max_version,
                    client,
                    auth_method,
                    auth_data,
                })
            }
        ),
        (arb_stream(), any::<u64>(), any::<u64>(), arb_bytes()).prop_map(
            |(stream, producer_id, sequence, records)| Request::Append(Append {
                stream,
                producer_id,
                sequence,
                records,
            })
        ),
        (arb_stream(), any::<u64>(), any::<u32>(), any::<u32>()).prop_map(
            |(stream, offset, max_bytes, wait_ms)| Request::Read(Read {
                stream,
                offset: Offset(offset),
                max_bytes,
                wait_ms,
            })
        ),
        (arb_stream(), arb_seek_by()).prop_map(|(stream, by)| Request::Seek(Seek { stream, by })),
        arb_stream().prop_map(Request::Lookup),
        arb_bytes().prop_map(Request::Admin),
    ]
}

fn arb_response() -> impl Strategy<Value = Response> {
    prop_oneof![
        (any::<u8>(), "\\PC{0,16}", any::<u32>(), any::<u32>()).prop_map(
            |(version, server_id, max_frame_len, max_record_bytes)| Response::Hello(HelloOk {
                version,
                server_id,
                max_frame_len,
                max_record_bytes,
            })
        ),
        (any::<u64>(), any::<u32>(), any::<bool>()).prop_map(|(first, count, duplicate)| {
            Response::Appended(Appended {
                first_offset: Offset(first),
                count,
                duplicate,
            })
        }),
        (any::<[u64; 3]>(), any::<bool>(), arb_bytes()).prop_map(|([f, e, s], eos, records)| {
            Response::Records(Records {
                first_offset: Offset(f),
                end_offset: Offset(e),
                start_offset: Offset(s),
                end_of_stream: eos,
                records,
            })
        }),
        any::<u64>().prop_map(|o| Response::Position(Offset(o))),
        (proptest::option::of("\\PC{1,32}"), any::<u64>())
            .prop_map(|(owner, epoch)| Response::Owner(OwnerInfo { owner, epoch })),
        arb_bytes().prop_map(Response::Admin),
    ]
}

fn arb_error() -> impl Strategy<Value = ResponseError> {
    (
        proptest::sample::select(ErrorCode::ALL),
        "\\PC{0,32}",
        proptest::option::of("\\PC{1,32}"),
    )
        .prop_map(|(code, message, owner)| {
            if code == ErrorCode::NotOwner {
                ResponseError::not_owner(owner, message)
            } else {
                ResponseError::new(code, message)
            }
        })
}

proptest! {
    #[test]
    fn requests_roundtrip(r in arb_request(), id in any::<u64>()) {
        let mut buf = BytesMut::new();
        r.encode(id, &mut buf, MAX).unwrap();
        let f = one_frame(&mut buf);
        prop_assert_eq!(f.request_id, id);
        prop_assert_eq!(f.op, r.op());
        prop_assert_eq!(Request::decode(&f).unwrap(), r);
    }

    #[test]
    fn responses_roundtrip(r in arb_response(), id in any::<u64>()) {
        let mut buf = BytesMut::new();
        r.encode(id, &mut buf, MAX).unwrap();
        let f = one_frame(&mut buf);
        prop_assert_eq!(f.request_id, id);
        prop_assert_eq!(Response::decode(&f).unwrap().unwrap(), r);
    }

    #[test]
    fn errors_roundtrip(e in arb_error(), op in any::<u8>()) {
        let mut buf = BytesMut::new();
        e.encode(op, 5, &mut buf, MAX).unwrap();
        prop_assert_eq!(decode_response(&one_frame(&mut buf)).unwrap().unwrap_err(), e);
    }

    /// Every cut of a body inside its fixed fields is refused, never misread.
    #[test]
    fn truncated_requests_are_refused(r in arb_request()) {
        let f = request_frame(&r);
        let tail = match &r {
            Request::Append(a) => a.records.len(),
            Request::Admin(json) => json.len(),
            _ => 0,
        };
        for cut in 0..f.body.len() - tail {
            let e = request_error(f.op, &f.body[..cut]);
            prop_assert_eq!(what(&e).0, "truncated", "{:?} cut {}", r, cut);
        }
    }

    #[test]
    fn truncated_responses_are_refused(r in arb_response(), e in arb_error()) {
        let tail = match &r {
            Response::Records(rs) => rs.records.len(),
            Response::Admin(json) => json.len(),
            _ => 0,
        };
        let mut ok = BytesMut::new();
        r.encode(1, &mut ok, MAX).unwrap();
        let mut err = BytesMut::new();
        e.encode(r.op(), 1, &mut err, MAX).unwrap();
        for (f, tail) in [(one_frame(&mut ok), tail), (one_frame(&mut err), 0)] {
            for cut in 0..f.body.len() - tail {
                let e = response_error(f.op, &f.body[..cut]);
                prop_assert_eq!(what(&e).0, "truncated", "cut {}", cut);
            }
        }
    }

    #[test]
    fn random_bodies_never_panic(op in 0u8..8, kind in 0u8..2, body in proptest::collection::vec(any::<u8>(), 0..128)) {
        let kind = if kind == 0 { FrameKind::Request } else { FrameKind::Response };
        let f = frame(kind, op, &body);
        let _ = Request::decode(&f);
        let _ = decode_response(&f);
    }

    #[test]
    fn mutated_frames_never_panic(r in arb_request(), pos in any::<usize>(), val in any::<u8>(), cut in any::<usize>()) {
        let mut buf = BytesMut::new();
        r.encode(1, &mut buf, MAX).unwrap();
        let mut raw = buf.to_vec();
        let i = pos % raw.len();
        raw[i] = val;
        raw.truncate(cut % (raw.len() + 1));
        let mut b = BytesMut::from(&raw[..]);
        let mut codec = FrameCodec::new(MAX);
        while let Ok(Some(f)) = codec.decode(&mut b) {
            let _ = Request::decode(&f);
            let _ = decode_response(&f);
        }
    }
}

#[test]
fn record_sets_join_and_split() {
    let a = Bytes::from_static(b"first set");
    let b = Bytes::from_static(b"");
    let c = Bytes::from_static(b"third");
    let joined = join_record_sets([&a, &b, &c]);
    assert_eq!(joined.len(), 12 + a.len() + c.len());
    assert_eq!(split_record_sets(joined.clone()).unwrap(), vec![a, b, c]);
    assert!(split_record_sets(joined.slice(..joined.len() - 1)).is_err());
    assert!(split_record_sets(Bytes::new()).unwrap().is_empty());
}
