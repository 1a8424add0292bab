//! Accepting and serving connections, with a bound on everything a client that never
//! authenticates can hold: open connections in all, open connections per client address, and
//! the time a connection may take to send a request's headers (also before its first request
//! and between keep-alive requests).
//!
//! Without the last two, a thousand connections that send nothing (or half a header, slowly)
//! hold every connection slot and authenticated users wait behind them (ATTACKS.md 52): no
//! handler, and so no token check, ever runs for them.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::limits::SHUTDOWN_DRAIN_SECS_MAX;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use crate::config::ConnectionLimits;

/// A listener that admits at most `connections_max` open connections, and at most
/// `connections_per_address_max` from one address.
pub struct LimitedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    /// Open connections per client address. An entry exists only while its count is above zero
    /// (the last connection's guard removes it), so the map is bounded by `connections_max`.
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
    per_address_max: usize,
}

impl LimitedListener {
    pub fn new(inner: TcpListener, limits: &ConnectionLimits) -> LimitedListener {
        assert!(limits.connections_max > 0 && limits.connections_per_address_max > 0);
        LimitedListener {
            inner,
            permits: Arc::new(Semaphore::new(limits.connections_max)),
            per_address: Arc::default(),
            per_address_max: limits.connections_per_address_max,
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The next admitted connection. Waits while every connection slot is taken; closes at
    /// once a connection from an address that already holds its share.
    pub async fn accept(&mut self) -> (LimitedStream, SocketAddr) {
        let permit = self.permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((stream, address)) => {
                    let Some(address_slot) = self.admit_address(address.ip()) else {
                        metrics::counter!("sealroom_connections_refused_total", "reason" => "per_address").increment(1);
                        drop(stream);
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    return (LimitedStream { stream, _permit: permit, _address_slot: address_slot }, address);
                }
                Err(error) => {
                    // Accept errors (EMFILE and friends) are transient; back off briefly.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn admit_address(&self, address: IpAddr) -> Option<AddressSlot> {
        let address = client_of(address);
        let mut counts = self.per_address.lock().expect("per-address lock");
        let count = counts.entry(address).or_insert(0);
        if *count >= self.per_address_max {
            return None;
        }
        *count += 1;
        Some(AddressSlot { address, counts: self.per_address.clone() })
    }
}

/// The client an address stands for: an IPv4 address, or the /64 network of an IPv6 address
/// (one host holds a whole /64 and could take a fresh address for every connection).
fn client_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

/// One open connection's place in its address's count, given back when the connection closes.
struct AddressSlot {
    address: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().expect("per-address lock");
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// A connection holding its permits.
pub struct LimitedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    _address_slot: AddressSlot,
}

/// Serves `router` on `listener` (HTTP/1.1 with keep-alive) until `shutdown` completes, then
/// lets open requests finish for at most [`SHUTDOWN_DRAIN_SECS_MAX`].
pub async fn serve<F>(mut listener: LimitedListener, router: axum::Router, limits: &ConnectionLimits, shutdown: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs));
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            (stream, _) = listener.accept() => stream,
            () = &mut shutdown => break,
            // Finished connections are reaped as they end, so the set stays as small as the
            // number of open connections.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            // A connection ending in an error (a client gone, a header timeout) is routine.
            let _ = connection.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(SHUTDOWN_DRAIN_SECS_MAX), graceful.shutdown()).await.is_err() {
        tracing::warn!("open connections did not finish in time; closing them");
        connections.abort_all();
    }
    while connections.join_next().await.is_some() {}
}

impl AsyncRead for LimitedStream {
    fn poll_read(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(context, buffer)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(context, buffer)
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
