//! Micro-benchmarks of Parquet segment objects: writing 32 MiB of 1 KiB incompressible records
//! (what the offloader does per object, without the bookies and the upload) and checking an
//! object (what its verify step does). Run: `cargo bench -p dlog-objects --bench segment`.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dlog_api::Record;
use dlog_api::stream::StreamName;
use dlog_objects::segment::check;
use dlog_objects::{SegmentOptions, SegmentWriter};

const BYTES: usize = 32 << 20;
const SIZE: usize = 1024;

fn records() -> Vec<Record> {
    let mut rng = fastrand::Rng::with_seed(5);
    let mut pool = vec![0u8; BYTES + SIZE];
    rng.fill(&mut pool);
    let pool = Bytes::from(pool);
    (0..BYTES / SIZE)
        .map(|i| {
            let mut r = Record::new(pool.slice(i * SIZE..(i + 1) * SIZE));
            r.key = Some(Bytes::from(format!("key-{}", i % 100)));
            r.timestamp_ms = 1_764_115_200_000 + i as i64;
            r
        })
        .collect()
}

fn write(stream: &StreamName, records: &[Record]) -> Bytes {
    let opts = SegmentOptions {
        size_hint: BYTES + BYTES / 16,
        ..SegmentOptions::default()
    };
    let mut w = SegmentWriter::new(stream, 0, opts).expect("writer");
    for (o, r) in records.iter().enumerate() {
        w.push(o as u64, r).expect("push");
    }
    w.finish(&[0]).expect("finish").0
}

fn segment(c: &mut Criterion) {
    let stream: StreamName = "bench/segment".parse().expect("name");
    let records = records();
    let mut g = c.benchmark_group("segment");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(BYTES as u64));
    g.bench_function("write_32MiB", |b| b.iter(|| write(&stream, &records)));
    let object = write(&stream, &records);
    eprintln!(
        "object: {} bytes for {BYTES} bytes of payload",
        object.len()
    );
    g.bench_function("check_32MiB", |b| {
        b.iter(|| check("bench", object.clone()).expect("check"))
    });
    g.finish();
}

criterion_group!(benches, segment);
criterion_main!(benches);
