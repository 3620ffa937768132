//! The suite's result: per kind of fault, how many were injected, how many runs ended completed,
//! how many needed the command run again, and how many invariant violations the monitors saw.

use std::collections::BTreeMap;

use bench_record::Record;

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
    record: Record,
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
    /// A table for the suite's faults; `smoke`: one of each kind (CI's size).
    pub fn new(seed: u64, smoke: bool) -> Table {
        Table {
            seed,
            rows: Vec::new(),
            record: Record::start("faults", "./dev faults", smoke),
        }
    }

    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// Prints the table (Markdown) and writes it as the benches write their figures
    /// (`bench-results/faults.json`; one fault per kind: `bench-results/smoke/faults.json`).
    pub fn report(self, seeds: usize) {
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
        let figures = json!({
            "seed": self.seed,
            "faults_per_kind": seeds,
            "rows": json_rows,
            "markdown": text,
        });
        self.record.write(figures).expect("write the fault table");
    }
}
