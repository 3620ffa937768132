//! Records a benchmark that is not a Rust program (e.g. validator-wasm/bench/run, in Node):
//!
//! `bench-record NAME --command 'COMMAND' -- PROGRAM [ARGS…]`
//!
//! runs PROGRAM with `BENCH_RECORD_FIGURES` naming a file it must write its figures to (one JSON
//! object), then writes `$CARGO_TARGET_DIR/bench-results/NAME.json` like a Rust bench does, with the
//! machine's load average from before PROGRAM started. PROGRAM's output passes through; when it fails,
//! nothing is recorded and its exit status is ours. A smoke-size run is one with `IPPOOL_BENCH_SMOKE`
//! set (cargo's `--bench` argument rule does not apply outside cargo).

use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};
use bench_record::Record;

fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bench-record NAME --command 'COMMAND' -- PROGRAM [ARGS...]";
    let (Some(name), Some("--command"), Some(command), Some("--")) = (
        args.first(),
        args.get(1).map(String::as_str),
        args.get(2),
        args.get(3).map(String::as_str),
    ) else {
        bail!("{usage}");
    };
    let Some((program, program_args)) = args[4..].split_first() else {
        bail!("{usage}");
    };
    let record = Record::start(
        name,
        command,
        std::env::var_os("IPPOOL_BENCH_SMOKE").is_some(),
    );
    let figures_file =
        std::env::temp_dir().join(format!("bench-record-{name}-{}.json", std::process::id()));
    let status = Command::new(program)
        .args(program_args)
        .env("BENCH_RECORD_FIGURES", &figures_file)
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    if !status.success() {
        eprintln!("bench-record: {program} failed ({status}); nothing recorded");
        return Ok(ExitCode::from(
            status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(1),
        ));
    }
    let text = std::fs::read_to_string(&figures_file).with_context(|| {
        format!(
            "{program} exited 0 but wrote no figures to {}",
            figures_file.display()
        )
    })?;
    std::fs::remove_file(&figures_file)
        .with_context(|| format!("removing {}", figures_file.display()))?;
    let figures =
        serde_json::from_str(&text).with_context(|| format!("{program}'s figures are not JSON"))?;
    record.write(figures)?;
    Ok(ExitCode::SUCCESS)
}
