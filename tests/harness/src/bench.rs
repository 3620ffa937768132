//! The size rule every benchmark of the workspace follows.

/// Whether a benchmark runs at its smoke size: under `cargo test --benches` (as CI runs them),
/// which, unlike `cargo bench`, passes no `--bench` argument, or when `IPPOOL_BENCH_SMOKE` is set.
pub fn smoke_size() -> bool {
    std::env::var_os("IPPOOL_BENCH_SMOKE").is_some() || !std::env::args().any(|a| a == "--bench")
}
