//! The server of every API of callgrid: gRPC (tonic's services as an axum router) and HTTP
//! (the supervisor service, metrics) run on the same code, so they share one authentication
//! layer (`callgrid-access`'s gate), and the same limits:
//!
//! - at most `max_connections` connections at once, and `max_connections_per_ip` from one
//!   address (more are closed at once and counted);
//! - a client has `header_timeout` to send a request head (HTTP/1);
//! - a connection whose writes make no progress for `write_timeout` is dropped, so a client
//!   that stops reading (a push stream to a dead browser) cannot hold a task and its buffers;
//! - HTTP/1.1 and HTTP/2 (gRPC: prior knowledge over plain TCP, ALPN over TLS) on one port;
//! - TLS with rustls when given a configuration (`tls`), mutual TLS when that configuration
//!   asks clients for a certificate; the handshake must end within `header_timeout`.
//!
//! **Invariant**: knows nothing of callgrid's routes or credentials; it serves a router.

mod io;
pub mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

pub use io::WriteTimeout;

/// Limits of a server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// What the server is called in logs (`grpc`, `supervisor`, `metrics`).
    pub name: &'static str,
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections from one address at once.
    pub max_connections_per_ip: usize,
    /// Time a client has to send a request head (HTTP/1).
    pub header_timeout: Duration,
    /// Longest a write may make no progress before the connection is dropped.
    pub write_timeout: Duration,
    /// HTTP/2 keep-alive pings, so dead peers of long streams are noticed.
    pub keepalive: Duration,
    /// TLS (`tls::server_config`); `None`: plain TCP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl ServerOptions {
    /// Defaults for a server called `name`.
    pub fn named(name: &'static str) -> ServerOptions {
        ServerOptions {
            name,
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            header_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// What a server has refused or dropped.
#[derive(Debug, Default)]
pub struct ServerCounters {
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections closed at once: over `max_connections`.
    pub refused_total: AtomicU64,
    /// Connections closed at once: over `max_connections_per_ip`.
    pub refused_per_ip: AtomicU64,
    /// TLS handshakes that failed or did not end in time.
    pub tls_failed: AtomicU64,
}

/// Connections open per address.
#[derive(Default)]
struct PerIp {
    open: Mutex<HashMap<IpAddr, usize>>,
}

struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            per_ip: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.per_ip.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes; connections in progress then get
/// a graceful shutdown (HTTP/2 GOAWAY, HTTP/1 close after the response).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    options: ServerOptions,
    counters: Arc<ServerCounters>,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let per_ip = Arc::new(PerIp::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let options = Arc::new(options);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and the like: wait a moment instead of spinning
                    tracing::warn!(server = options.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            counters.refused_total.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(server = options.name, %peer, "connection refused: server full");
            continue;
        };
        let Some(ip_slot) = per_ip.take(peer.ip(), options.max_connections_per_ip) else {
            counters.refused_per_ip.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(server = options.name, %peer, "connection refused: too many from this address");
            continue;
        };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let name = options.name;
        let app = app.clone();
        let ended = match &options.tls {
            None => {
                let watched = graceful.watch(connection(stream, peer, app, &options));
                Box::pin(watched) as std::pin::Pin<Box<dyn Future<Output = Served> + Send>>
            }
            Some(config) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
                let watcher = graceful.watcher();
                let options = options.clone();
                let counters = counters.clone();
                Box::pin(async move {
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(options.header_timeout, handshake).await {
                        Ok(Ok(tls)) => watcher.watch(connection(tls, peer, app, &options)).await,
                        Ok(Err(e)) => {
                            counters.tls_failed.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(server = name, %peer, error = %e, "tls handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            counters.tls_failed.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(server = name, %peer, "tls handshake timed out");
                            Ok(())
                        }
                    }
                })
            }
        };
        tokio::spawn(async move {
            if let Err(e) = ended.await {
                tracing::debug!(server = name, %peer, error = %e, "connection ended with an error");
            }
            drop((permit, ip_slot));
        });
    }
    drop(listener);
    // connections that do not finish within a few seconds are dropped with the runtime
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

/// What serving a connection ends with.
type Served = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// One connection, HTTP/1 or HTTP/2, with the peer's address in every request.
fn connection<I>(
    stream: I,
    peer: SocketAddr,
    app: axum::Router,
    options: &ServerOptions,
) -> impl hyper_util::server::graceful::GracefulConnection<
    Error = Box<dyn std::error::Error + Send + Sync>,
>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(WriteTimeout::new(stream, options.write_timeout));
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            async move {
                use tower_service::Service;
                app.call(req.map(axum::body::Body::new)).await
            }
        });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(options.keepalive)
        .keep_alive_timeout(Duration::from_secs(20))
        .max_header_list_size(64 * 1024)
        .max_concurrent_streams(10_000);
    builder.serve_connection(io, service).into_owned()
}
