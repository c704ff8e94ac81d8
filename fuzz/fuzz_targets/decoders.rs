//! Feeds arbitrary bytes to every decoder of untrusted input: the frame codec, bookie and client
//! requests and responses, entries and record sets. Any panic, hang or huge allocation is a bug.
#![no_main]

use bytes::{Bytes, BytesMut};
use dlog_api::record::{RecordSetLimits, decode_record_set};
use dlog_api::wire::FrameCodec;
use dlog_api::wire::{bookie, client};
use dlog_api::Entry;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let mut codec = FrameCodec::new(1 << 20);
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        let _ = bookie::Request::decode(&frame);
        let _ = bookie::Response::decode(&frame);
        let _ = client::Request::decode(&frame);
        let _ = client::decode_response(&frame);
    }
    let bytes = Bytes::copy_from_slice(data);
    let _ = Entry::decode(bytes.clone(), 1 << 20);
    let _ = decode_record_set(bytes, &RecordSetLimits::default());
});
