//! An HTTPS proxy between a Kubernetes client and a real kube-apiserver that misbehaves on command,
//! so that tests can see how `kubectl-ippool` (and any other client) copes with a slow, refusing,
//! flaky or unreachable API server.
//!
//! `fault-proxy --upstream https://127.0.0.1:PORT --upstream-ca FILE --dir DIR`
//!
//! It serves TLS (HTTP/1.1 and HTTP/2) on a free loopback port with a certificate of its own, written
//! to `DIR/proxy-ca.crt`, and prints `listening 127.0.0.1:PORT` once it accepts connections. Requests
//! go to the upstream unchanged (bearer tokens included); responses, watches too, stream back as they
//! come. Every request is logged as a JSON line in `DIR/requests.jsonl`.
//!
//! Faults are commands on standard input, one per line, each answered on standard output with
//! `ok <command>` once applied or `error <message>`; the end of standard input ends the proxy:
//!
//! - `latency MS`: delay each request by MS milliseconds (0: none).
//! - `status CODE COUNT [RETRY_AFTER_SECONDS]`: answer the next COUNT requests to arrive with a
//!   Kubernetes `Status` of HTTP CODE (and a `Retry-After`) instead of forwarding them.
//! - `drop`: abort every open client connection.
//! - `close-watches`: end every watch response between two events.
//! - `cut on` / `cut off`: the network is down (connections aborted, new ones closed at once) / up.
//! - `reset`: no latency, no queued statuses, no cut.

mod args;
mod connections;
mod control;
mod faults;
mod forward;
mod request_log;
mod server;
mod tls;
mod watch_body;

use std::{process::ExitCode, sync::Arc};

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::{
    args::Args, connections::Connections, forward::Proxy, request_log::RequestLog, tls::UpstreamTls,
};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fault-proxy: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let Some(args) = Args::parse(std::env::args_os().skip(1))? else {
        println!("{}", args::HELP);
        return Ok(());
    };
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    // One crypto provider for both sides, named explicitly: the workspace's rustls has only ring,
    // but a process-wide default would depend on what else the dependency graph enables.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_tls = tls::proxy_server_config(&provider, &args.dir.join("proxy-ca.crt"))?;
    let upstream_tls = UpstreamTls::trusting(&provider, &args.upstream_ca)?;
    let log = RequestLog::create(&args.dir.join("requests.jsonl"))?;
    let proxy = Arc::new(Proxy::new(&args.upstream, upstream_tls, log)?);
    let connections = Arc::new(Connections::default());

    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding 127.0.0.1:0")?;
    let address = listener.local_addr().context("the listening address")?;
    tokio::spawn(server::serve(
        listener,
        server_tls,
        Arc::clone(&proxy),
        Arc::clone(&connections),
    ));
    control::say(&format!("listening {address}"))?;
    control::run(&proxy, &connections).await
}
