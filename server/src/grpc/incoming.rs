//! Accepted connections, bounded: at most `max_connections` open, at most
//! `max_connections_per_peer` from one address (more are closed as soon as
//! they are accepted, before any TLS or HTTP/2 work), and a new connection
//! that sends nothing within `handshake_timeout` is closed. Idle sockets
//! from one client can then neither exhaust the daemon's file descriptors
//! nor lock others out. (Dead connections are closed by HTTP/2 keepalive,
//! set on the server in `server.rs`.)

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::limits::LimitSettings;
use crate::metrics::Metrics;

/// The connection info handlers see: tonic's own, so that
/// `Request::remote_addr` and `peer_certs` keep working.
pub type ConnectInfo = TcpConnectInfo;

#[derive(Default)]
struct Open {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
    /// When a refusal was last logged (one line a second at most).
    last_logged: Option<Instant>,
}

struct Counts {
    open: Mutex<Open>,
    max_total: usize,
    max_per_peer: usize,
    metrics: Metrics,
}

/// One open connection's place in the counts.
struct Place {
    counts: Arc<Counts>,
    peer: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().expect("connections lock");
        open.total -= 1;
        if let Some(n) = open.per_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                open.per_peer.remove(&self.peer);
            }
        }
    }
}

impl Counts {
    fn enter(self: &Arc<Self>, peer: IpAddr) -> Option<Place> {
        let mut open = self.open.lock().expect("connections lock");
        let from_peer = open.per_peer.get(&peer).copied().unwrap_or(0);
        if open.total >= self.max_total || from_peer >= self.max_per_peer {
            self.metrics.rejected(if open.total >= self.max_total {
                "connections"
            } else {
                "connections_per_peer"
            });
            let now = Instant::now();
            if open
                .last_logged
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
            {
                open.last_logged = Some(now);
                tracing::warn!(
                    %peer,
                    open = open.total,
                    from_peer,
                    "connection refused: limits.max_connections or max_connections_per_peer reached"
                );
            }
            return None;
        }
        open.total += 1;
        *open.per_peer.entry(peer).or_insert(0) += 1;
        Some(Place {
            counts: self.clone(),
            peer,
        })
    }
}

/// The accepted connections of `listener`, within `limits`.
/// Refusals are counted in `metrics`.
pub fn incoming(
    listener: TcpListener,
    limits: &LimitSettings,
    metrics: Metrics,
) -> impl Stream<Item = std::io::Result<Guarded>> + Send + 'static {
    let counts = Arc::new(Counts {
        open: Mutex::default(),
        max_total: limits.max_connections,
        max_per_peer: limits.max_connections_per_peer,
        metrics,
    });
    let handshake = limits.handshake_timeout;
    futures_util::stream::unfold(listener, move |listener| {
        let counts = counts.clone();
        async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        // Out of descriptors or the like: wait, and go on
                        // serving the connections that are open.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(place) = counts.enter(peer.ip()) else {
                    drop(stream);
                    continue;
                };
                // Small RPCs must not wait for delayed ACKs.
                let _ = stream.set_nodelay(true);
                let guarded = Guarded {
                    stream,
                    first_bytes: Some(Box::pin(tokio::time::sleep(handshake))),
                    place,
                };
                return Some((Ok(guarded), listener));
            }
        }
    })
}

/// An accepted connection that holds its place in the counts and must
/// start speaking within the handshake timeout.
pub struct Guarded {
    stream: TcpStream,
    /// Until the first bytes arrive.
    first_bytes: Option<Pin<Box<tokio::time::Sleep>>>,
    place: Place,
}

impl Connected for Guarded {
    type ConnectInfo = ConnectInfo;

    fn connect_info(&self) -> ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if let Some(deadline) = self.first_bytes.as_mut() {
            match &polled {
                Poll::Ready(Ok(())) if buf.filled().len() > before => self.first_bytes = None,
                Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                    self.first_bytes = None;
                    self.place.counts.metrics.rejected("handshake");
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client sent nothing within limits.handshake_timeout",
                    )));
                }
                _ => {}
            }
        }
        polled
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
