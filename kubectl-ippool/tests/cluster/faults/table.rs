//! The suite's result: per kind of fault, how many were injected, how many runs ended completed,
//! how many needed the command run again, and how many invariant violations the monitors saw.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::json;

use super::inject::Kind;

/// One run under one fault.
pub struct Row {
    kind: Kind,
    resize: bool,
    detail: String,
    pub completed: usize,
    /// Steps a run ran again by itself once the fault passed.
    pub steps_rerun: usize,
    /// Times the command had to be run again.
    pub reruns: usize,
    pub violations: usize,
}

impl Row {
    pub fn new(kind: Kind, resize: bool, detail: String) -> Row {
        Row {
            kind,
            resize,
            detail,
            completed: 0,
            steps_rerun: 0,
            reruns: 0,
            violations: 0,
        }
    }
}

pub struct Table {
    seed: u64,
    rows: Vec<Row>,
}

#[derive(Default)]
struct Sum {
    injected: usize,
    completed: usize,
    steps_rerun: usize,
    reruns: usize,
    violations: usize,
    details: Vec<String>,
}

impl Table {
    pub fn new(seed: u64) -> Table {
        Table {
            seed,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// Prints the table (Markdown) and writes it as JSON beside the benches' results.
    pub fn report(&self, seeds: usize) {
        let mut sums: BTreeMap<(Kind, bool), Sum> = BTreeMap::new();
        for row in &self.rows {
            let sum = sums.entry((row.kind, row.resize)).or_default();
            sum.injected += 1;
            sum.completed += row.completed;
            sum.steps_rerun += row.steps_rerun;
            sum.reruns += row.reruns;
            sum.violations += row.violations;
            sum.details.push(row.detail.clone());
        }
        let mut text = String::from(
            "| fault | operation | injected | completed | steps ridden out | re-runs needed | invariant violations | sizes |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        let mut json_rows = Vec::new();
        for ((kind, resize), sum) in &sums {
            let operation = if *resize { "resize" } else { "migrate" };
            text.push_str(&format!(
                "| {} | {operation} | {} | {} | {} | {} | {} | {} |\n",
                kind.name(),
                sum.injected,
                sum.completed,
                sum.steps_rerun,
                sum.reruns,
                sum.violations,
                sum.details.join(", ")
            ));
            json_rows.push(json!({
                "fault": kind.name(), "operation": operation, "injected": sum.injected,
                "completed": sum.completed, "steps_rerun": sum.steps_rerun, "reruns": sum.reruns,
                "violations": sum.violations, "sizes": sum.details,
            }));
        }
        println!(
            "fault suite (seed {}, {seeds} per kind):\n{text}",
            self.seed
        );
        let dir =
            PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
                .join("fault-results");
        std::fs::create_dir_all(&dir).expect("create the results folder");
        let record = json!({
            "seed": self.seed,
            "faults_per_kind": seeds,
            "command": "IPPOOL_FAULT_SEEDS=N ./dev faults",
            "rows": json_rows,
            "markdown": text,
        });
        let path = dir.join(if seeds > 1 {
            "faults.json"
        } else {
            "faults-smoke.json"
        });
        std::fs::write(&path, serde_json::to_string_pretty(&record).unwrap())
            .expect("write the fault table");
        eprintln!("fault suite: table written to {}", path.display());
    }
}
