//! The accept loop: TLS, then HTTP/1.1 or HTTP/2 by ALPN, each connection abortable.

use std::{convert::Infallible, sync::Arc, time::Duration};

use hyper::service::service_fn;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::{
    connections::{AbortSignal, Connections, StreamExecutor, aborted},
    forward::Proxy,
};

/// A client that connects and never finishes its handshake must not hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    proxy: Arc<Proxy>,
    connections: Arc<Connections>,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _peer)) => tcp,
            Err(error) => {
                // Typically EMFILE: nothing to wait for, so pause rather than spin.
                eprintln!("fault-proxy: accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Under `cut on` the connection is dropped here, before TLS: the client sees the network
        // refuse it rather than an answer.
        let Some(abort) = connections.admit() else {
            continue;
        };
        tokio::spawn(serve_connection(
            tcp,
            acceptor.clone(),
            Arc::clone(&proxy),
            abort,
        ));
    }
}

async fn serve_connection(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    proxy: Arc<Proxy>,
    mut abort: AbortSignal,
) {
    let _ = tcp.set_nodelay(true);
    let for_requests = abort.clone();
    let executor = StreamExecutor {
        abort: abort.clone(),
    };
    let served = async move {
        let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                eprintln!("fault-proxy: TLS handshake failed: {error}");
                return;
            }
            Err(_) => {
                eprintln!("fault-proxy: TLS handshake timed out");
                return;
            }
        };
        let service = service_fn(move |request| {
            let proxy = Arc::clone(&proxy);
            let abort = for_requests.clone();
            async move { Ok::<_, Infallible>(proxy.handle(request, abort).await) }
        });
        let mut builder = auto::Builder::new(executor);
        builder.http1().timer(TokioTimer::new());
        if let Err(error) = builder.serve_connection(TokioIo::new(tls), service).await {
            eprintln!("fault-proxy: connection ended with an error: {error}");
        }
    };
    // Aborting drops the connection, TLS stream and socket included, without a goodbye: the client
    // sees its requests and streams cut off.
    tokio::select! {
        () = served => {}
        () = aborted(&mut abort) => {}
    }
}
