//! Throughput of `validate` on a generated stream of non-overlapping pools, parsing included: pools
//! per second of wall-clock time and of this thread's CPU time (which, unlike wall time, does not count
//! waiting for a core on a busy machine), each the median of the samples after a warm-up.
//!
//! Run: `cargo bench -p ippool-rules --bench validate`. Knobs: IPPOOL_BENCH_POOLS (10,000),
//! IPPOOL_BENCH_SAMPLES (20), IPPOOL_BENCH_WARMUP (5). Smoke size (`cargo test --benches`, or
//! IPPOOL_BENCH_SMOKE=1): 2 samples after 1 warm-up run. Writes `bench-results/validate.json`.

mod workload;

use std::time::Instant;

use bench_record::Record;
use ippool_rules::context::Operation;
use ippool_rules::{Source, validate};
use serde_json::json;

/// CPU time this thread has run, from Linux's schedstat.
fn thread_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")
        .expect("/proc/thread-self/schedstat (Linux) gives the thread's CPU time");
    stat.split_whitespace()
        .next()
        .and_then(|ns| ns.parse().ok())
        .expect("schedstat starts with the CPU time in ns")
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let smoke = bench_record::smoke();
    let record = Record::start(
        "validate",
        "cargo bench -p ippool-rules --bench validate",
        smoke,
    );
    let count = workload::pool_count();
    let samples = workload::setting("IPPOOL_BENCH_SAMPLES", if smoke { 2 } else { 20 });
    let warmup = workload::setting("IPPOOL_BENCH_WARMUP", if smoke { 1 } else { 5 });
    let text = workload::pool_stream(count);
    let ctx = workload::context();
    let source = [Source {
        name: "pools.yaml",
        text: &text,
    }];

    // What the figures are about: every generated pool is read and valid.
    let report = validate(&source, &ctx, &Operation::Create);
    assert_eq!(report.documents.len(), count);
    assert_eq!(report.errors, 0, "the generated pools must be valid");

    for _ in 0..warmup {
        std::hint::black_box(validate(&source, &ctx, &Operation::Create));
    }
    let (mut wall_ms, mut cpu_ms) = (Vec::new(), Vec::new());
    for _ in 0..samples.max(1) {
        let cpu_before = thread_cpu_ns();
        let started = Instant::now();
        std::hint::black_box(validate(&source, &ctx, &Operation::Create));
        wall_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        cpu_ms.push((thread_cpu_ns() - cpu_before) as f64 / 1e6);
    }
    let (wall, cpu) = (median(&mut wall_ms), median(&mut cpu_ms));
    let per_second = |ms: f64| (count as f64 / (ms / 1000.0)).round();
    println!(
        "validate {count} pools ({:.1} MiB), median of {} after {warmup} warm-up: {wall:.1} ms wall \
         ({:.0} pools/s), {cpu:.1} ms CPU ({:.0} pools/s)",
        text.len() as f64 / 1048576.0,
        wall_ms.len(),
        per_second(wall),
        per_second(cpu),
    );
    record
        .write(json!({
            "pools": count,
            "input_bytes": text.len(),
            "warmup_runs": warmup,
            "samples": wall_ms.len(),
            "wall_ms": {"median": wall, "min": wall_ms[0], "max": wall_ms[wall_ms.len() - 1]},
            "cpu_ms": {"median": cpu, "min": cpu_ms[0], "max": cpu_ms[cpu_ms.len() - 1]},
            "pools_per_s_wall": per_second(wall),
            "pools_per_s_cpu": per_second(cpu),
        }))
        .expect("the bench record is written");
}
