//! `DIR/requests.jsonl`: one JSON line per request, written as soon as its outcome is known and
//! flushed at once, because tests read the log while the proxy runs.

use std::{
    fs::{File, OpenOptions},
    io::Write as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use http::{Request, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::connections::{Abort, AbortSignal};

pub struct RequestLog {
    path: PathBuf,
    /// One `write` per line on an unbuffered file: a reader never sees two lines interleaved.
    file: Mutex<File>,
}

impl RequestLog {
    pub fn create(path: &Path) -> anyhow::Result<Arc<RequestLog>> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Arc::new(RequestLog {
            path: path.to_owned(),
            file: Mutex::new(file),
        }))
    }

    /// Starts the entry of a request that has just arrived on a connection with `abort`.
    pub fn begin<B>(self: &Arc<Self>, request: &Request<B>, abort: AbortSignal) -> PendingEntry {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        let user_agent = request
            .headers()
            .get(header::USER_AGENT)
            .map(|agent| String::from_utf8_lossy(agent.as_bytes()).into_owned())
            .unwrap_or_default();
        let fields = Map::from_iter([
            ("at_ms".to_owned(), json!(at_ms)),
            ("method".to_owned(), json!(request.method().as_str())),
            ("path".to_owned(), json!(request.uri().path())),
            (
                "query".to_owned(),
                json!(request.uri().query().unwrap_or("")),
            ),
            ("user_agent".to_owned(), json!(user_agent)),
        ]);
        PendingEntry {
            log: Arc::clone(self),
            fields: Some(fields),
            abort,
        }
    }

    fn append(&self, entry: Map<String, Value>) {
        let mut line = Value::Object(entry).to_string();
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(error) = file.write_all(line.as_bytes()) {
            eprintln!(
                "fault-proxy: cannot append to {}: {error}",
                self.path.display()
            );
        }
    }
}

/// How a request ended, as far as the log is concerned.
#[derive(Debug)]
pub enum Outcome {
    /// Forwarded and answered by the API server, or answered by an injected status.
    Status(StatusCode),
    /// The API server could not be reached or failed mid-request.
    Failed(String),
}

/// A request whose outcome is not known yet. Dropped unfinished — its connection was aborted or the
/// client went away — it is logged as `cut` (under `cut on`) or `dropped`.
pub struct PendingEntry {
    log: Arc<RequestLog>,
    /// Taken when written.
    fields: Option<Map<String, Value>>,
    abort: AbortSignal,
}

impl PendingEntry {
    pub fn finish(mut self, outcome: Outcome) {
        let outcome = match outcome {
            Outcome::Status(code) => json!(code.as_u16()),
            Outcome::Failed(message) => json!(format!("error: {message}")),
        };
        self.write(outcome);
    }

    fn write(&mut self, outcome: Value) {
        if let Some(mut fields) = self.fields.take() {
            fields.insert("outcome".to_owned(), outcome);
            self.log.append(fields);
        }
    }
}

impl Drop for PendingEntry {
    fn drop(&mut self) {
        if self.fields.is_some() {
            let why = *self.abort.borrow();
            let outcome = match why {
                Some(Abort::Cut) => "cut",
                Some(Abort::Dropped) | None => "dropped",
            };
            self.write(json!(outcome));
        }
    }
}
