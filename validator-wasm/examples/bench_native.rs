//! Native side of validator-wasm/bench: validates a file `runs` times in-process, through the same
//! `validate_text` the WebAssembly build calls, and serialises the report as the CLI does (compact
//! JSON); prints the timings as JSON (milliseconds).
//!
//! `cargo run --release -p validator-wasm --example bench_native -- FILE RUNS`

use std::time::Instant;

use anyhow::{Context, bail};
use validator_wasm::{ValidateOptions, validate_text};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(file), runs) = (args.next(), args.next()) else {
        bail!("usage: bench_native FILE [RUNS]");
    };
    let runs: usize = runs
        .as_deref()
        .unwrap_or("10")
        .parse()
        .context("RUNS must be a number")?;
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
    let options = ValidateOptions {
        name: Some(file.clone()),
        ..ValidateOptions::default()
    };
    let mut times = Vec::with_capacity(runs);
    let mut documents = 0;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let report = validate_text(&text, &options)?;
        let json = report.to_json();
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        documents = report.documents.len();
        std::hint::black_box(json);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"documents\":{documents},\"runs\":{},\"medianMs\":{:.3},\"minMs\":{:.3}}}",
        times.len(),
        times[times.len() / 2],
        times[0]
    );
    Ok(())
}
