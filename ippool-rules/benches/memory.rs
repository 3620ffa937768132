//! Peak heap memory (and one-shot pools/s) of validating the generated stream, measured with a
//! counting global allocator. Run: `cargo bench -p ippool-rules --bench memory`
//! (`IPPOOL_BENCH_POOLS` sets the pool count, default 10,000).

mod workload;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use ippool_rules::context::Operation;
use ippool_rules::{Source, validate};

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

/// CPU time this thread has run, from Linux's schedstat (None elsewhere): unlike wall time it
/// does not count waiting for a core on a busy machine.
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let count = workload::pool_count();
    let text = workload::pool_stream(count);
    let ctx = workload::context();
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let allocations_before = ALLOCATIONS.load(Ordering::Relaxed);
    let cpu_before = thread_cpu_ns();
    let started = Instant::now();
    let report = validate(
        &[Source {
            name: "pools.yaml",
            text: &text,
        }],
        &ctx,
        &Operation::Create,
    );
    let elapsed = started.elapsed();
    let cpu = thread_cpu_ns()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let peak = PEAK.load(Ordering::Relaxed) - before;
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
    let json = report.to_json();
    println!(
        "pools: {count}; input: {:.1} MiB; report: {} documents, {} errors, {:.1} MiB as JSON",
        text.len() as f64 / 1048576.0,
        report.documents.len(),
        report.errors,
        json.len() as f64 / 1048576.0
    );
    println!(
        "peak heap during validate: {:.1} MiB ({:.0} bytes/pool, input text excluded); {:.0} allocations/pool",
        peak as f64 / 1048576.0,
        peak as f64 / count as f64,
        allocations as f64 / count as f64
    );
    println!(
        "one-shot wall time: {:.1} ms, {:.0} pools/s",
        elapsed.as_secs_f64() * 1000.0,
        count as f64 / elapsed.as_secs_f64()
    );
    if let Some(cpu) = cpu {
        let seconds = cpu as f64 / 1e9;
        println!(
            "one-shot CPU time: {:.1} ms, {:.0} pools/s (the criterion bench `validate` gives a statistical figure)",
            seconds * 1000.0,
            count as f64 / seconds
        );
    }
}
