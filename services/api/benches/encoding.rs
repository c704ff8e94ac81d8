//! Micro-benchmarks of the hot encodings: CRC32C, sealing and verifying entries, and record
//! sets with each codec. Run: `cargo bench -p dlog-api --bench encoding`.

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dlog_api::record::{RecordSetLimits, decode_record_set, encode_record_set};
use dlog_api::{Compression, Entry, EntryId, LedgerId, Record};

fn crc(c: &mut Criterion) {
    let mut g = c.benchmark_group("crc32c");
    for size in [1024usize, 64 << 10, 1 << 20] {
        let data = vec![0xA5u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, d| {
            b.iter(|| crc32c::crc32c(std::hint::black_box(d)))
        });
    }
    g.finish();
}

fn entry(c: &mut Criterion) {
    let mut g = c.benchmark_group("entry");
    for size in [1024usize, 1 << 20] {
        let payload = vec![7u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("encode", size), &payload, |b, p| {
            b.iter(|| {
                Entry::encode(
                    LedgerId(1),
                    EntryId(2),
                    p.len() as u64,
                    std::hint::black_box(p),
                )
            })
        });
        let sealed = Entry::encode(LedgerId(1), EntryId(2), payload.len() as u64, &payload);
        g.bench_with_input(BenchmarkId::new("verify", size), &sealed, |b, e| {
            b.iter(|| Entry::verify(std::hint::black_box(e), LedgerId(1), EntryId(2), 8 << 20))
        });
    }
    g.finish();
}

fn record_set(c: &mut Criterion) {
    let mut g = c.benchmark_group("record_set");
    // 1000 records of 1 KiB of semi-compressible data: a 1 MB batch.
    let records: Vec<Record> = (0..1000u32)
        .map(|i| Record {
            payload: Bytes::from(
                (0..1024u32)
                    .map(|j| ((i * 7 + j) % 61) as u8)
                    .collect::<Vec<u8>>(),
            ),
            key: Some(Bytes::from(format!("key-{i}"))),
            timestamp_ms: 1_700_000_000_000 + i64::from(i),
            txid: Some(u64::from(i)),
        })
        .collect();
    let limits = RecordSetLimits::default();
    g.throughput(Throughput::Bytes(1000 * 1024));
    for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let name = format!("{codec:?}").to_lowercase();
        g.bench_function(BenchmarkId::new("encode", &name), |b| {
            b.iter(|| encode_record_set(std::hint::black_box(&records), codec, &limits))
        });
        let enc = encode_record_set(&records, codec, &limits).expect("encodes");
        g.bench_function(BenchmarkId::new("decode", &name), |b| {
            b.iter(|| decode_record_set(std::hint::black_box(enc.clone()), &limits))
        });
    }
    g.finish();
}

criterion_group!(benches, crc, entry, record_set);
criterion_main!(benches);
