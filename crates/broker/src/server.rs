//! The accept loop and per-connection framing.
//!
//! A frame is a 4-byte big-endian size and that many bytes. Requests on one
//! connection are handled one at a time and answered in order (Kafka mutes a
//! connection while its request is in flight); every connection runs in its
//! own task, so a slow request never stalls another connection.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::dispatch::{self, Outcome};
use crate::state::BrokerState;

/// Kafka's connection limits: `max.connections`, `max.connections.per.ip`, `connections.max.idle.ms`.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub idle_timeout: Duration,
}

/// Open connections per client address; an entry goes when its count reaches zero.
#[derive(Default)]
struct PerIpCounts(Mutex<HashMap<IpAddr, usize>>);

impl PerIpCounts {
    fn try_add(&self, ip: IpAddr, limit: usize) -> bool {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(ip).or_default();
        if *count >= limit {
            return false;
        }
        *count += 1;
        true
    }

    fn remove(&self, ip: IpAddr) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&ip);
            }
        }
    }
}

/// Accepts connections until `shutdown` flips to true.
pub async fn serve(listener: TcpListener, state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    let connection_ids = AtomicU64::new(0);
    let limits = state.connection_limits.clone();
    let max_connections = limits.max_connections;
    let permits = Arc::new(Semaphore::new(max_connections));
    let per_ip = Arc::new(PerIpCounts::default());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max_connections, "refusing connection: max.connections reached");
            continue;
        };
        if !per_ip.try_add(peer.ip(), limits.max_connections_per_ip) {
            tracing::warn!(%peer, limit = limits.max_connections_per_ip, "refusing connection: max.connections.per.ip reached");
            continue;
        }
        let id = connection_ids.fetch_add(1, Ordering::Relaxed);
        let state = state.clone();
        let shutdown = shutdown.clone();
        let per_ip = per_ip.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(reason) = handle_connection(stream, peer, id, state, shutdown).await {
                tracing::info!(%peer, connection = id, "closing connection: {reason}");
            }
            per_ip.remove(peer.ip());
        });
    }
}

async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    connection_id: u64,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let mut writer = BufWriter::new(writer);
    let mut response = BytesMut::new();
    loop {
        let idle_timeout = state.connection_limits.idle_timeout;
        let frame = tokio::select! {
            frame = tokio::time::timeout(idle_timeout, read_frame(&mut reader, state.socket_request_max_bytes)) => match frame {
                Ok(frame) => frame?,
                Err(_) => return Err(format!("idle for connections.max.idle.ms={}", idle_timeout.as_millis())),
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(frame) = frame else { return Ok(()) };
        let context = dispatch::RequestContext { connection_id, peer };
        response.clear();
        match dispatch::handle(&state, &context, frame, &mut response).await {
            Outcome::Respond => {
                writer
                    .write_all(&response)
                    .await
                    .map_err(|e| format!("write failed: {e}"))?;
                writer.flush().await.map_err(|e| format!("write failed: {e}"))?;
            }
            Outcome::NoResponse => {}
            Outcome::Close(reason) => return Err(reason),
        }
    }
}

/// Reads one frame; `None` at a clean end of stream between frames.
async fn read_frame(reader: &mut (impl AsyncReadExt + Unpin), max_bytes: usize) -> Result<Option<Bytes>, String> {
    let mut size = [0u8; 4];
    match reader.read_exact(&mut size).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(format!("read failed: {error}")),
    }
    let size = i32::from_be_bytes(size);
    if size < 0 || size as usize > max_bytes {
        return Err(format!(
            "request size {size} is outside [0, socket.request.max.bytes={max_bytes}]"
        ));
    }
    // Grow as bytes arrive rather than trusting the size prefix with memory up front.
    let mut frame = BytesMut::with_capacity((size as usize).min(64 * 1024));
    let mut remaining = size as usize;
    while remaining > 0 {
        let before = frame.len();
        frame.reserve(remaining.min(1 << 20));
        let mut limited = reader.take(remaining as u64);
        let read = limited
            .read_buf(&mut frame)
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        if read == 0 {
            return Err(format!("connection closed inside a {size}-byte request"));
        }
        remaining -= frame.len() - before;
    }
    Ok(Some(frame.freeze()))
}
