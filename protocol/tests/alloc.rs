//! Proves the record iterator does not allocate per record: a counting global allocator
//! around one pass over a 1000-record batch (values, keys and headers all touched).
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use strom_protocol::record_batch::{BatchBuilder, BatchHeader, BatchView, DecodeOptions, NewRecord};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn iterating_records_does_not_allocate_per_record() {
    let mut b = BatchBuilder::new(BatchHeader::default(), 128 * 1024);
    let value = [7u8; 100];
    for i in 0..1000u32 {
        let key = i.to_be_bytes();
        b.append(&NewRecord {
            timestamp: i64::from(i),
            key: Some(&key),
            value: Some(&value),
            headers: &[("trace", Some(b"abc")), ("trace", None)],
        })
        .unwrap();
    }
    // Same shape as a fetch response: the batch is a slice of a larger frozen frame.
    let frame = Bytes::from(b.finish().unwrap().to_vec());
    let opts = DecodeOptions::default();

    let before = ALLOCS.load(Ordering::Relaxed);
    let mut buf = frame.clone();
    let batch = BatchView::parse(&mut buf, &opts).unwrap().unwrap();
    let mut total = 0usize;
    for r in batch.records(&opts).unwrap() {
        let r = r.unwrap();
        total += r.value.as_ref().map_or(0, |v| v.len()) + r.key.map_or(0, |k| k.len());
        for h in r.headers.iter() {
            total += h.key.len() + h.value.map_or(0, |v| v.len());
        }
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    // The counter itself works: one Vec is one allocation.
    let probe = ALLOCS.load(Ordering::Relaxed);
    let v = std::hint::black_box(vec![1u8; 10]);
    assert!(ALLOCS.load(Ordering::Relaxed) > probe && v.len() == 10);
    assert_eq!(total, 1000 * (100 + 4 + 5 + 3 + 5));
    // The first slice of a Vec-backed Bytes promotes it to a shared buffer: one allocation
    // per batch at most, none per record.
    assert!(allocs <= 2, "{allocs} allocations for 1000 records");
}
