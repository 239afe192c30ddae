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

/// Requests read ahead of the one being handled, per connection: the next
/// request's bytes arrive while the current one is stored (bounded, like a
/// client's max in-flight requests).
const READ_AHEAD_REQUESTS: usize = 4;

async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    connection_id: u64,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let (frames, mut queued) = tokio::sync::mpsc::channel(READ_AHEAD_REQUESTS);
    let reading = tokio::spawn(read_frames(
        reader,
        frames,
        state.socket_request_max_bytes,
        state.connection_limits.idle_timeout,
    ));
    let mut writer = BufWriter::new(writer);
    let mut response = BytesMut::new();
    let result = loop {
        let frame = tokio::select! {
            frame = queued.recv() => frame,
            _ = shutdown.changed() => break Ok(()),
        };
        // The reader ends the queue with its reason to stop, or closes it at a clean end of stream.
        let frame = match frame {
            Some(Ok(frame)) => frame,
            Some(Err(reason)) => break Err(reason),
            None => break Ok(()),
        };
        let context = dispatch::RequestContext { connection_id, peer };
        response.clear();
        match dispatch::handle(&state, &context, frame, &mut response).await {
            Outcome::Respond => {
                if let Err(error) = writer.write_all(&response).await {
                    break Err(format!("write failed: {error}"));
                }
                if let Err(error) = writer.flush().await {
                    break Err(format!("write failed: {error}"));
                }
            }
            Outcome::NoResponse => {}
            Outcome::Close(reason) => break Err(reason),
        }
    };
    reading.abort();
    result
}

/// Reads frames into `frames` until the stream ends, a frame is bad, or the
/// connection stays idle for `idle_timeout`.
async fn read_frames(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    frames: tokio::sync::mpsc::Sender<Result<Bytes, String>>,
    max_bytes: usize,
    idle_timeout: Duration,
) {
    loop {
        let frame = match tokio::time::timeout(idle_timeout, read_frame(&mut reader, max_bytes)).await {
            Ok(Ok(Some(frame))) => Ok(frame),
            Ok(Ok(None)) => return,
            Ok(Err(reason)) => Err(reason),
            Err(_) => Err(format!("idle for connections.max.idle.ms={}", idle_timeout.as_millis())),
        };
        let last = frame.is_err();
        if frames.send(frame).await.is_err() || last {
            return;
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
