//! Peak heap memory and allocations of validating the generated stream, measured with a counting
//! global allocator (which slows allocation down: throughput is the `validate` bench's figure).
//!
//! Run: `cargo bench -p ippool-rules --bench memory` (IPPOOL_BENCH_POOLS sets the pool count, default
//! 10,000). Writes `bench-results/memory.json`.

mod workload;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bench_record::Record;
use ippool_rules::context::Operation;
use ippool_rules::{Source, validate};
use serde_json::json;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() {
    let record = Record::start(
        "memory",
        "cargo bench -p ippool-rules --bench memory",
        bench_record::smoke(),
    );
    let count = workload::pool_count();
    let text = workload::pool_stream(count);
    let ctx = workload::context();
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let allocations_before = ALLOCATIONS.load(Ordering::Relaxed);
    let report = validate(
        &[Source {
            name: "pools.yaml",
            text: &text,
        }],
        &ctx,
        &Operation::Create,
    );
    let peak = PEAK.load(Ordering::Relaxed) - before;
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
    // What the figures are about: every generated pool is read and valid.
    assert_eq!(report.documents.len(), count);
    assert_eq!(report.errors, 0, "the generated pools must be valid");
    let report_json_bytes = report.to_json().len();
    println!(
        "pools: {count}; input: {:.1} MiB; report: {:.1} MiB as JSON",
        text.len() as f64 / 1048576.0,
        report_json_bytes as f64 / 1048576.0
    );
    println!(
        "peak heap during validate: {:.1} MiB ({:.0} bytes/pool, input text excluded); {:.0} allocations/pool",
        peak as f64 / 1048576.0,
        peak as f64 / count as f64,
        allocations as f64 / count as f64
    );
    record
        .write(json!({
            "pools": count,
            "input_bytes": text.len(),
            "report_json_bytes": report_json_bytes,
            "peak_heap_bytes": peak,
            "peak_heap_bytes_per_pool": (peak as f64 / count as f64).round(),
            "allocations": allocations,
            "allocations_per_pool": (allocations as f64 / count as f64).round(),
        }))
        .expect("the bench record is written");
}
