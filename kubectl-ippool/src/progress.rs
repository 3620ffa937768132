//! Where a migration's or resize's events are shown: `-o json` lines for automation, plain lines
//! when the output is not a terminal, live bars on one.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use ippool_cluster::migration::events::{Event, Line, Progress, RunOutcome};
use k8s_openapi::jiff::Timestamp;

/// `-o json`: one object per line.
pub struct JsonLines<W: Write + Send> {
    out: Mutex<W>,
}

impl<W: Write + Send> JsonLines<W> {
    pub fn new(out: W) -> Self {
        JsonLines {
            out: Mutex::new(out),
        }
    }

    pub fn into_inner(self) -> W {
        self.out.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

impl<W: Write + Send> Progress for JsonLines<W> {
    fn emit(&self, event: Event) {
        let line = Line {
            ts: Timestamp::now().to_string(),
            event,
        };
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // Serialising these types cannot fail; a closed stdout is not worth stopping a migration.
        if let Ok(text) = serde_json::to_string(&line) {
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
    }
}

/// The human wording of an event, shared by plain lines and the terminal display.
pub fn describe(event: &Event) -> Option<String> {
    Some(match event {
        Event::Plan { .. } => return None,
        Event::Locked { id, resumed, done } => {
            if *resumed {
                format!(
                    "resuming migration {id} (done before: {})",
                    if done.is_empty() {
                        "nothing".to_owned()
                    } else {
                        done.join(", ")
                    }
                )
            } else {
                format!("lock taken for migration {id}")
            }
        }
        Event::StepStarted { step } => format!("→ {step}"),
        Event::StepDone { step, skipped } => {
            if *skipped {
                format!("✓ {step} (done by an earlier run)")
            } else {
                format!("✓ {step}")
            }
        }
        Event::WorkloadStarted {
            workload,
            method,
            pods,
        } => format!("  {workload}: {method}, {pods} pod(s) in the old pool"),
        Event::PodEvicted { pod } => format!("    evicted pod {pod}"),
        Event::PodDeleted { pod } => format!("    deleted pod {pod}"),
        Event::PodMoved { pod, address } => format!("    pod {pod} → {address}"),
        Event::Waiting { subject, reason } => format!("    waiting: {subject}: {reason}"),
        Event::WorkloadDone {
            workload,
            workloads_done,
            workloads_total,
            pods_moved,
        } => format!(
            "  moved {workload} ({workloads_done}/{workloads_total} workloads, {pods_moved} pods moved)"
        ),
        Event::Released { change } => format!("    {change}"),
        Event::Warning { message } => format!("warning: {message}"),
        Event::Finished { outcome, stats } => match (outcome, stats) {
            (RunOutcome::Completed, Some(stats)) => format!(
                "done in {:.1}s with {} API requests",
                stats.seconds, stats.api_requests
            ),
            (RunOutcome::Completed, None) => "done".to_owned(),
            (RunOutcome::DryRun, _) => "dry run: nothing was changed".to_owned(),
            (RunOutcome::Blocked, _) => "blocked: nothing was changed".to_owned(),
            (RunOutcome::Declined, _) => "not confirmed: nothing was changed".to_owned(),
            (RunOutcome::Aborted, _) => "aborted".to_owned(),
        },
        Event::Failed { error } => format!("error: {error}"),
    })
}

/// Plain lines (not a terminal).
pub struct TextLines<W: Write + Send> {
    out: Mutex<W>,
}

impl<W: Write + Send> TextLines<W> {
    pub fn new(out: W) -> Self {
        TextLines {
            out: Mutex::new(out),
        }
    }
}

impl<W: Write + Send> Progress for TextLines<W> {
    fn emit(&self, event: Event) {
        if let Some(text) = describe(&event) {
            let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
    }
}

/// A terminal: a bar of workloads moved with the pods count, a spinner with the current phase or
/// wait, and every other event printed above them.
pub struct Bars {
    multi: MultiProgress,
    phase: ProgressBar,
    workloads: ProgressBar,
}

impl Bars {
    pub fn new() -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let phase = multi.add(ProgressBar::new_spinner());
        phase.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        phase.enable_steady_tick(Duration::from_millis(120));
        let workloads = multi.add(ProgressBar::hidden());
        workloads.set_style(
            ProgressStyle::with_template("  [{bar:30}] {pos}/{len} workloads · {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Bars {
            multi,
            phase,
            workloads,
        }
    }
}

impl Default for Bars {
    fn default() -> Self {
        Bars::new()
    }
}

impl Progress for Bars {
    fn emit(&self, event: Event) {
        match &event {
            Event::StepStarted { step } => self.phase.set_message(step.clone()),
            Event::Waiting { subject, reason } => {
                self.phase
                    .set_message(format!("waiting: {subject}: {reason}"));
                return;
            }
            Event::WorkloadDone {
                workloads_done,
                workloads_total,
                pods_moved,
                ..
            } => {
                if self.workloads.is_hidden() {
                    self.workloads.set_draw_target(ProgressDrawTarget::stderr());
                }
                self.workloads.set_length(*workloads_total as u64);
                self.workloads.set_position(*workloads_done as u64);
                self.workloads
                    .set_message(format!("{pods_moved} pods moved"));
            }
            Event::Finished { .. } | Event::Failed { .. } => {
                self.phase.finish_and_clear();
                self.workloads.finish();
            }
            _ => {}
        }
        if let Some(text) = describe(&event) {
            let _ = self.multi.println(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ippool_cluster::migration::events::RunStats;

    #[test]
    fn json_lines_parse_back_with_their_schema() {
        let sink = JsonLines::new(Vec::new());
        sink.emit(Event::StepStarted {
            step: "disable-old".into(),
        });
        sink.emit(Event::WorkloadDone {
            workload: "Deployment kube-system/coredns".into(),
            workloads_done: 1,
            workloads_total: 3,
            pods_moved: 2,
        });
        sink.emit(Event::PodMoved {
            pod: "default/web-1".into(),
            address: "10.0.1.4".parse().unwrap(),
        });
        sink.emit(Event::Finished {
            outcome: RunOutcome::Completed,
            stats: Some(RunStats {
                api_requests: 42,
                seconds: 3.5,
            }),
        });
        let text = String::from_utf8(sink.into_inner()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["event"], "step-started");
        assert_eq!(first["step"], "disable-old");
        assert!(first["ts"].as_str().unwrap().ends_with('Z'));
        let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["event"], "workload-done");
        assert_eq!(second["workloadsDone"], 1);
        assert_eq!(second["podsMoved"], 2);
        let parsed: Vec<Line> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            parsed[2].event,
            Event::PodMoved {
                pod: "default/web-1".into(),
                address: "10.0.1.4".parse().unwrap()
            }
        );
        assert_eq!(
            parsed[3].event,
            Event::Finished {
                outcome: RunOutcome::Completed,
                stats: Some(RunStats {
                    api_requests: 42,
                    seconds: 3.5
                })
            }
        );
        let last: serde_json::Value = serde_json::from_str(lines[3]).unwrap();
        assert_eq!(last["stats"]["apiRequests"], 42);
    }

    #[test]
    fn text_lines_skip_the_plan_and_word_the_rest() {
        let sink = TextLines::new(Vec::new());
        sink.emit(Event::Plan {
            plan: serde_json::json!({}),
        });
        sink.emit(Event::Waiting {
            subject: "Pod shop/web-1".into(),
            reason: "eviction refused by PodDisruptionBudget shop/web".into(),
        });
        let text = String::from_utf8(sink.out.into_inner().unwrap()).unwrap();
        assert_eq!(
            text,
            "    waiting: Pod shop/web-1: eviction refused by PodDisruptionBudget shop/web\n"
        );
    }
}
