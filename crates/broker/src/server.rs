//! The accept loop and per-connection framing.
//!
//! A frame is a 4-byte big-endian size and that many bytes. Requests on one
//! connection are answered in order and handled one at a time (Kafka mutes
//! a connection while its request is in flight), with one exception: a
//! produce request lets the next request start once its appends are done,
//! so a producer's requests are appended while earlier ones wait for their
//! fsync, and share it (group commit). Every connection runs in its own
//! task, so a slow request never stalls another connection.
//!
//! Requests read but not yet being handled are bounded across the broker by
//! `queued.max.requests`, Kafka's request queue: a connection whose next
//! request finds the queue full stops reading until a slot frees, so the
//! client feels TCP backpressure. A request leaves the queue when its
//! handling starts; waiting requests (a long poll, a join) hold no slot.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};
use tokio::task::JoinHandle;

use crate::dispatch::{self, Outcome};
use crate::state::BrokerState;

/// Kafka's connection and request limits: `max.connections`,
/// `max.connections.per.ip`, `connections.max.idle.ms`, `queued.max.requests`.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub idle_timeout: Duration,
    pub queued_max_requests: usize,
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
    let request_queue = Arc::new(Semaphore::new(limits.queued_max_requests));
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
        let request_queue = request_queue.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(reason) = handle_connection(stream, peer, id, state, request_queue, shutdown).await {
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

/// Requests of one connection being handled at once: produce requests
/// appended while earlier ones wait for their fsync. As many as a client
/// keeps in flight (`max.in.flight.requests.per.connection`, 5).
const IN_FLIGHT_REQUESTS: usize = 5;

/// A handled request: what to do with it, and the buffer holding its response.
type Handled = (Outcome, BytesMut);

async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    connection_id: u64,
    state: Arc<BrokerState>,
    request_queue: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let (frames, mut queued) = tokio::sync::mpsc::channel(READ_AHEAD_REQUESTS);
    let reading = tokio::spawn(read_frames(
        reader,
        frames,
        request_queue,
        state.socket_request_max_bytes,
        state.connection_limits.idle_timeout,
    ));
    let mut writer = BufWriter::new(writer);
    // Oldest first; responses are written in this order.
    let mut in_flight: VecDeque<JoinHandle<Handled>> = VecDeque::new();
    let mut spare_buffers: Vec<BytesMut> = Vec::new();
    // Whether the newest request released the next one, and what tells.
    let mut next_released = false;
    let mut release: Option<oneshot::Receiver<()>> = None;
    // Why the reader stopped; the requests already started are answered
    // first (a client may half-close after its last request).
    let mut reader_end: Option<Result<(), String>> = None;
    let result = loop {
        if in_flight.is_empty()
            && let Some(end) = reader_end.take()
        {
            break end;
        }
        tokio::select! {
            biased;
            _ = shutdown.changed() => break Ok(()),
            handled = async { in_flight.front_mut().expect("guarded by the condition").await }, if !in_flight.is_empty() => {
                in_flight.pop_front();
                let (outcome, buffer) = match handled {
                    Ok(handled) => handled,
                    Err(error) => break Err(format!("request handler failed: {error}")),
                };
                match outcome {
                    Outcome::Respond => {
                        if let Err(error) = writer.write_all(&buffer).await {
                            break Err(format!("write failed: {error}"));
                        }
                        // The next response, when already done, goes out in the same flush.
                        let more = in_flight.front().is_some_and(|next| next.is_finished());
                        if !more && let Err(error) = writer.flush().await {
                            break Err(format!("write failed: {error}"));
                        }
                    }
                    Outcome::NoResponse => {}
                    Outcome::Close(reason) => break Err(reason),
                }
                spare_buffers.push(buffer);
            }
            released = async { release.as_mut().expect("guarded by the condition").await }, if release.is_some() => {
                release = None;
                next_released = released.is_ok();
            }
            frame = queued.recv(), if reader_end.is_none() && (in_flight.is_empty() || (next_released && in_flight.len() < IN_FLIGHT_REQUESTS)) => {
                // The reader ends the queue with its reason to stop, or closes it at a clean end of stream.
                // Handling starts: the request leaves the queue.
                let frame = match frame {
                    Some(Ok((frame, _queued))) => frame,
                    Some(Err(reason)) => {
                        reader_end = Some(Err(reason));
                        continue;
                    }
                    None => {
                        reader_end = Some(Ok(()));
                        continue;
                    }
                };
                let (next_request, released) = dispatch::NextRequest::new();
                let context = dispatch::RequestContext { connection_id, peer, next_request };
                let mut buffer = spare_buffers.pop().unwrap_or_default();
                buffer.clear();
                let state = state.clone();
                in_flight.push_back(tokio::spawn(async move {
                    let outcome = dispatch::handle(&state, &context, frame, &mut buffer).await;
                    (outcome, buffer)
                }));
                next_released = false;
                release = Some(released);
            }
        }
    };
    reading.abort();
    // After a shutdown or a failed write, requests already started still
    // finish (their appends are done or under way); their answers are lost.
    for handling in in_flight {
        let _ = handling.await;
    }
    result
}

/// A request read off the socket, with its slot in the request queue.
type QueuedFrame = (Bytes, OwnedSemaphorePermit);

/// Reads frames into `frames` until the stream ends, a frame is bad, or the
/// connection stays idle for `idle_timeout`. Each complete frame waits for a
/// slot in `request_queue` before the next is read.
async fn read_frames(
    mut reader: impl AsyncReadExt + Unpin,
    frames: tokio::sync::mpsc::Sender<Result<QueuedFrame, String>>,
    request_queue: Arc<Semaphore>,
    max_bytes: usize,
    idle_timeout: Duration,
) {
    loop {
        let frame = match tokio::time::timeout(idle_timeout, read_frame(&mut reader, max_bytes)).await {
            Ok(Ok(Some(frame))) => match request_queue.clone().acquire_owned().await {
                Ok(slot) => Ok((frame, slot)),
                Err(_) => return, // the queue is never closed
            },
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

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// A queue of one slot: a connection's next request is read only once
    /// the previous one leaves the queue (its handling starts).
    #[tokio::test(start_paused = true)]
    async fn a_full_request_queue_stops_reading_until_a_slot_frees() {
        let (mut client, server) = tokio::io::duplex(1024);
        for body in [b"one".as_slice(), b"two", b"three"] {
            client.write_all(&(body.len() as i32).to_be_bytes()).await.unwrap();
            client.write_all(body).await.unwrap();
        }
        let queue = Arc::new(Semaphore::new(1));
        let (frames, mut queued) = tokio::sync::mpsc::channel(READ_AHEAD_REQUESTS);
        let idle = Duration::from_secs(600);
        tokio::spawn(read_frames(server, frames, queue.clone(), 1024, idle));

        let (first, slot) = queued.recv().await.unwrap().unwrap();
        assert_eq!(first, "one");
        // However long the first waits, the second is not read meanwhile.
        let waited = tokio::time::timeout(Duration::from_secs(60), queued.recv()).await;
        assert!(waited.is_err(), "a request was read past a full queue");
        assert_eq!(queue.available_permits(), 0);
        drop(slot);
        let (second, _slot) = queued.recv().await.unwrap().unwrap();
        assert_eq!(second, "two");
    }
}
