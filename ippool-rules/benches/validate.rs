//! Throughput of `validate` on a generated stream of non-overlapping pools, parsing included.
//! Criterion reports elements/s = pools/s. Smoke run: `IPPOOL_BENCH_POOLS=200 cargo bench
//! -p ippool-rules --bench validate -- --quick`.

mod workload;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ippool_rules::context::Operation;
use ippool_rules::{Source, validate};

fn bench_validate(c: &mut Criterion) {
    let count = workload::pool_count();
    let text = workload::pool_stream(count);
    let ctx = workload::context();
    let check = validate(
        &[Source {
            name: "pools.yaml",
            text: &text,
        }],
        &ctx,
        &Operation::Create,
    );
    assert_eq!(check.documents.len(), count);
    assert_eq!(check.errors, 0, "the generated pools must be valid");
    let mut group = c.benchmark_group("validate");
    group.throughput(Throughput::Elements(count as u64));
    group.sample_size(10);
    group.bench_function(format!("{count}_pools"), |b| {
        b.iter(|| {
            validate(
                &[Source {
                    name: "pools.yaml",
                    text: &text,
                }],
                &ctx,
                &Operation::Create,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench_validate);
criterion_main!(benches);
