//! Native side of validator-wasm/bench: validates one file through the same `validate_text` the
//! WebAssembly build calls and serialises the report as the CLI does (compact JSON), once per `run`
//! line read from stdin, answering each with one JSON line `{"ms":…,"documents":…,"errors":…}`. The
//! Node side asks for one native run, makes one wasm run, and so on, so both sides see the same
//! machine state (A B A B …). bench/run builds it with the wasm build's profile.
//!
//! `bench_native FILE` (lines `run` on stdin)

use std::io::{BufRead as _, Write as _};
use std::time::Instant;

use anyhow::{Context, bail};
use validator_wasm::{ValidateOptions, validate_text};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(file), None) = (args.next(), args.next()) else {
        bail!("usage: bench_native FILE (then one line `run` per validation on stdin)");
    };
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
    let options = ValidateOptions {
        name: Some(file.clone()),
        ..ValidateOptions::default()
    };
    let mut stdout = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading stdin")?;
        if line != "run" {
            bail!("unknown request {line:?}: only `run`");
        }
        let start = Instant::now();
        let report = validate_text(&text, &options)?;
        let json = report.to_json();
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        std::hint::black_box(json);
        writeln!(
            stdout,
            "{{\"ms\":{ms:.4},\"documents\":{},\"errors\":{}}}",
            report.documents.len(),
            report.errors
        )?;
        stdout.flush()?;
    }
    Ok(())
}
