//! The Strom peer of bench/avro_serde.py: strom-registry's Avro serializer and deserializer
//! through a real schema registry (the schema registered once, then cached), on the same 1000
//! records as the Java and Python peers (bench/avro_schema.avsc, values from the record's
//! index), each encoded and decoded N times round-robin on one thread after a warm-up.
//!
//!   avro_serde REGISTRY_URL SCHEMA_FILE N
//!
//! Prints one JSON line per API: generic records (`GenericRecord`, which shares its schema's
//! field names as the Java peer's `GenericData.Record` does), apache-avro's generic values
//! (`apache_avro::types::Value`, which owns every field name), serde types, and serde types
//! borrowing their strings from the datum (`decode_borrowed`); records/s and CPU ns per
//! record (this thread's CPU, getrusage RUSAGE_THREAD) of each phase, and an FNV-1a digest of
//! the 1000 framed encodings (equal across peers: the bytes are the same).
//!
//! Each line also carries what the allocator costs: the heap allocations per record of each
//! phase (counted in a pass over the pool after the timed loops: the system allocator is
//! wrapped by a counter that the timed loops pay one relaxed load per allocation for), and,
//! measured in this process, the CPU ns of a malloc/free pair of the sizes a generic record
//! allocates and of an `Arc` clone and drop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use strom_registry::avro::{AvroDeserializer, AvroSchema, AvroSerializer, GenericRecord, GenericValue, Value};
use strom_registry::{RegistryConfig, SchemaRegistryClient};

const POOL: usize = 1000;

/// The system allocator, counting allocations while `COUNTING` is set.
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

fn count() {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;
const TOPIC: &str = "bench-avro";

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Session {
    sid: String,
    start: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum Kind {
    #[serde(rename = "VIEW")]
    View,
    #[serde(rename = "CLICK")]
    Click,
    #[serde(rename = "BUY")]
    Buy,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Event {
    id: i64,
    user: String,
    score: f64,
    count: i32,
    active: bool,
    country: Option<String>,
    kind: Kind,
    tags: Vec<String>,
    amounts: Vec<i64>,
    session: Session,
}

/// [`Event`] borrowing its strings from the datum it was decoded from
/// (`AvroDeserializer::decode_borrowed`).
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct EventRef<'a> {
    id: i64,
    user: &'a str,
    score: f64,
    count: i32,
    active: bool,
    country: Option<&'a str>,
    kind: Kind,
    #[serde(borrow)]
    tags: Vec<&'a str>,
    amounts: Vec<i64>,
    #[serde(borrow)]
    session: SessionRef<'a>,
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct SessionRef<'a> {
    sid: &'a str,
    start: i64,
}

impl<'a> EventRef<'a> {
    fn of(e: &'a Event) -> Self {
        EventRef {
            id: e.id,
            user: &e.user,
            score: e.score,
            count: e.count,
            active: e.active,
            country: e.country.as_deref(),
            kind: e.kind.clone(),
            tags: e.tags.iter().map(String::as_str).collect(),
            amounts: e.amounts.clone(),
            session: SessionRef {
                sid: &e.session.sid,
                start: e.session.start,
            },
        }
    }
}

fn event(i: i64) -> Event {
    Event {
        id: i * 7919,
        user: format!("user-{}", i % 10000),
        score: (i % 1000) as f64 / 8.0,
        count: (i % 100_000) as i32,
        active: i % 2 == 0,
        country: (i % 3 != 0).then(|| "NO".to_owned()),
        kind: [Kind::View, Kind::Click, Kind::Buy][(i % 3) as usize].clone(),
        tags: vec![format!("t{}", i % 5), format!("t{}", i % 7)],
        amounts: vec![i, i * 2, i * 3],
        session: Session {
            sid: format!("s-{}", i % 777),
            start: 1_700_000_000_000 + i,
        },
    }
}

fn generic(e: &Event) -> Value {
    let kind = match e.kind {
        Kind::View => (0, "VIEW"),
        Kind::Click => (1, "CLICK"),
        Kind::Buy => (2, "BUY"),
    };
    Value::Record(vec![
        ("id".into(), Value::Long(e.id)),
        ("user".into(), Value::String(e.user.clone())),
        ("score".into(), Value::Double(e.score)),
        ("count".into(), Value::Int(e.count)),
        ("active".into(), Value::Boolean(e.active)),
        (
            "country".into(),
            match &e.country {
                None => Value::Union(0, Box::new(Value::Null)),
                Some(c) => Value::Union(1, Box::new(Value::String(c.clone()))),
            },
        ),
        ("kind".into(), Value::Enum(kind.0, kind.1.into())),
        (
            "tags".into(),
            Value::Array(e.tags.iter().map(|t| Value::String(t.clone())).collect()),
        ),
        (
            "amounts".into(),
            Value::Array(e.amounts.iter().map(|a| Value::Long(*a)).collect()),
        ),
        (
            "session".into(),
            Value::Record(vec![
                ("sid".into(), Value::String(e.session.sid.clone())),
                ("start".into(), Value::Long(e.session.start)),
            ]),
        ),
    ])
}

/// [`Event`] as a generic record of `schema` (Java's `new GenericData.Record(schema)` and
/// `put`s).
fn record(schema: &AvroSchema, e: &Event) -> GenericValue {
    let mut r = schema.new_record().unwrap();
    let kind = match e.kind {
        Kind::View => (0, "VIEW"),
        Kind::Click => (1, "CLICK"),
        Kind::Buy => (2, "BUY"),
    };
    r.put("id", e.id).unwrap();
    r.put("user", e.user.as_str()).unwrap();
    r.put("score", e.score).unwrap();
    r.put("count", e.count).unwrap();
    r.put("active", e.active).unwrap();
    r.put("country", e.country.clone()).unwrap();
    r.put("kind", GenericValue::Enum(kind.0, kind.1.into())).unwrap();
    r.put("tags", e.tags.clone()).unwrap();
    r.put("amounts", e.amounts.clone()).unwrap();
    let mut session: GenericRecord = r.new_record_for("session").unwrap();
    session.put("sid", e.session.sid.as_str()).unwrap();
    session.put("start", e.session.start).unwrap();
    r.put("session", session).unwrap();
    GenericValue::Record(r)
}

/// This thread's CPU time (user + system), in ns.
fn thread_cpu_ns() -> u128 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own; RUSAGE_THREAD is Linux's.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u128 * 1_000_000 + t.tv_usec as u128;
    (us(ru.ru_utime) + us(ru.ru_stime)) * 1000
}

struct Phase {
    rps: f64,
    cpu_ns: f64,
    /// Heap allocations per record.
    allocs: f64,
}

/// Measures `f` over `n` records after a warm-up; with `AVRO_SERDE_ONLY` set to another
/// phase (`generic.decode`, `serde-borrowed.encode`...), skips it, so that a profiler sees
/// one phase alone.
async fn measure<F: AsyncFnMut(usize) -> usize>(phase: &str, n: usize, mut f: F) -> Phase {
    if std::env::var("AVRO_SERDE_ONLY").is_ok_and(|only| only != phase) {
        return Phase {
            rps: 0.0,
            cpu_ns: 0.0,
            allocs: 0.0,
        };
    }
    let mut sink = 0usize;
    for k in 0..n.min(200_000) {
        sink = sink.wrapping_add(f(k % POOL).await); // warm-up
    }
    let (c0, t0) = (thread_cpu_ns(), Instant::now());
    for k in 0..n {
        sink = sink.wrapping_add(f(k % POOL).await);
    }
    let (cpu, wall) = (thread_cpu_ns() - c0, t0.elapsed());
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    for k in 0..POOL {
        sink = sink.wrapping_add(f(k).await);
    }
    COUNTING.store(false, Ordering::Relaxed);
    std::hint::black_box(sink);
    Phase {
        rps: n as f64 / wall.as_secs_f64(),
        cpu_ns: cpu as f64 / n as f64,
        allocs: ALLOCATIONS.load(Ordering::Relaxed) as f64 / POOL as f64,
    }
}

/// CPU ns of a malloc/free pair, allocating and freeing together the sizes a generic record
/// of the bench allocates (its fields, the session's, two arrays, five short strings).
fn alloc_free_ns() -> f64 {
    const SIZES: [usize; 9] = [560, 112, 112, 168, 9, 2, 2, 2, 5];
    let rounds = 1_000_000;
    let c0 = thread_cpu_ns();
    for _ in 0..rounds {
        let held: [Vec<u8>; 9] = std::array::from_fn(|i| Vec::with_capacity(std::hint::black_box(SIZES[i])));
        std::hint::black_box(&held);
    }
    (thread_cpu_ns() - c0) as f64 / (rounds * SIZES.len()) as f64
}

/// CPU ns of an `Arc` clone and drop (what a generic record pays for sharing its schema).
fn arc_clone_drop_ns() -> f64 {
    let a = Arc::new(0u64);
    let rounds = 10_000_000;
    let c0 = thread_cpu_ns();
    for _ in 0..rounds {
        std::hint::black_box(Arc::clone(std::hint::black_box(&a)));
    }
    (thread_cpu_ns() - c0) as f64 / rounds as f64
}

fn fnv(pool: &[Vec<u8>]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for e in pool {
        for &b in e {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, schema_file, n) = (&args[1], &args[2], args[3].parse::<usize>().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let registry = SchemaRegistryClient::new(RegistryConfig::new(url).unwrap()).unwrap();
        let schema = AvroSchema::parse(&std::fs::read_to_string(schema_file).unwrap()).unwrap();
        let ser = AvroSerializer::new(registry.clone(), schema.clone());
        let de = AvroDeserializer::new(registry, None);
        let events: Vec<Event> = (0..POOL as i64).map(event).collect();
        let values: Vec<Value> = events.iter().map(generic).collect();
        let records: Vec<GenericValue> = events.iter().map(|e| record(&schema, e)).collect();

        let mut framed = Vec::with_capacity(POOL);
        for v in &values {
            framed.push(ser.encode_value(TOPIC, false, v).await.unwrap());
        }
        for ((e, f), g) in events.iter().zip(&framed).zip(&records) {
            assert_eq!(&ser.encode(TOPIC, false, e).await.unwrap(), f, "serde and generic encodings differ");
            assert_eq!(&ser.encode_generic(TOPIC, false, g).await.unwrap(), f, "the two generic encodings differ");
            assert_eq!(&de.decode_generic(TOPIC, f).await.unwrap(), g);
            assert_eq!(&de.decode::<Event>(TOPIC, f).await.unwrap(), e);
            assert_eq!(de.decode_borrowed::<EventRef<'_>>(TOPIC, f).await.unwrap(), EventRef::of(e));
        }
        let digest = fnv(&framed);

        let generic_enc = measure("generic.encode", n, async |i| ser.encode_generic(TOPIC, false, &records[i]).await.unwrap().len()).await;
        let generic_dec = measure("generic.decode", n, async |i| match de.decode_generic(TOPIC, &framed[i]).await.unwrap() {
            GenericValue::Record(r) => r.len(),
            _ => 0,
        })
        .await;
        let value_enc = measure("value.encode", n, async |i| ser.encode_value(TOPIC, false, &values[i]).await.unwrap().len()).await;
        let value_dec = measure("value.decode", n, async |i| match de.decode_value(TOPIC, &framed[i]).await.unwrap() {
            Value::Record(f) => f.len(),
            _ => 0,
        })
        .await;
        let serde_enc = measure("serde.encode", n, async |i| ser.encode(TOPIC, false, &events[i]).await.unwrap().len()).await;
        let serde_dec = measure("serde.decode", n, async |i| de.decode::<Event>(TOPIC, &framed[i]).await.unwrap().tags.len()).await;
        // Borrowed: encoded from a view of the owned event, decoded into one of the datum.
        let refs: Vec<EventRef<'_>> = events.iter().map(EventRef::of).collect();
        let borrowed_enc = measure("serde-borrowed.encode", n, async |i| ser.encode(TOPIC, false, &refs[i]).await.unwrap().len()).await;
        let borrowed_dec = measure("serde-borrowed.decode", n, async |i| {
            de.decode_borrowed::<EventRef<'_>>(TOPIC, &framed[i]).await.unwrap().tags.len()
        })
        .await;
        let (alloc_ns, arc_ns) = (alloc_free_ns(), arc_clone_drop_ns());
        for (api, enc, dec) in [
            ("generic", generic_enc, generic_dec),
            ("value", value_enc, value_dec),
            ("serde", serde_enc, serde_dec),
            ("serde-borrowed", borrowed_enc, borrowed_dec),
        ] {
            println!(
                "{{\"peer\":\"strom-{api}\",\"records\":{n},\"encode_rps\":{:.0},\"encode_cpu_ns\":{:.1},\"decode_rps\":{:.0},\"decode_cpu_ns\":{:.1},\"digest\":\"{digest:016x}\",\"encode_allocs\":{:.2},\"decode_allocs\":{:.2},\"alloc_free_ns\":{alloc_ns:.1},\"arc_clone_drop_ns\":{arc_ns:.1}}}",
                enc.rps, enc.cpu_ns, dec.rps, dec.cpu_ns, enc.allocs, dec.allocs
            );
        }
    });
}
