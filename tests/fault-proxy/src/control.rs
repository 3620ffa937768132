//! The control channel: commands on standard input, one per line, each answered on standard output
//! once it has taken effect, so that a test knows the fault is in place when it reads the answer.

use std::io::Write as _;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::{connections::Connections, faults::Command, forward::Proxy};

/// Reads commands until standard input ends.
pub async fn run(proxy: &Proxy, connections: &Connections) -> anyhow::Result<()> {
    let mut input = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .await
            .context("reading commands from standard input")?;
        if read == 0 {
            return Ok(());
        }
        // Bytes that are not UTF-8 make an unknown command, not an end.
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        let reply = match text.parse::<Command>() {
            Ok(command) => {
                apply(command, proxy, connections).await;
                format!("ok {text}")
            }
            Err(error) => format!("error {error}"),
        };
        say(&reply)?;
    }
}

async fn apply(command: Command, proxy: &Proxy, connections: &Connections) {
    match command {
        Command::Latency(latency) => proxy.faults().set_latency(latency),
        Command::Status(injection) => proxy.faults().inject(injection),
        Command::Drop => connections.drop_all().await,
        Command::CloseWatches => proxy.watch_ends().end_all(),
        Command::Cut(true) => connections.cut().await,
        Command::Cut(false) => connections.restore(),
        Command::Reset => {
            proxy.faults().reset();
            connections.restore();
        }
    }
}

/// One line on standard output, flushed: the harness waits for it.
pub fn say(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .context("writing to standard output")
}
