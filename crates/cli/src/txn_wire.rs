//! A minimal Kafka protocol client for the admin requests librdkafka has no
//! API for (ListTransactions, DescribeTransactions, DescribeProducers), and
//! for `perf commit`, which times OffsetCommit without a client library: one
//! TCP connection per broker, one request at a time, each bounded by the
//! request timeout. Messages are encoded and decoded by `kafka-protocol`;
//! this module only frames them (a 4-byte size, then header and body).
//!
//! No ApiVersions negotiation: every request here is sent at a version that
//! Kafka has accepted since it introduced the API (KIP-664).

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{FindCoordinatorRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Responses larger than this are refused rather than allocated.
const MAX_RESPONSE_BYTES: usize = 100 * 1024 * 1024;

/// A connection to one broker.
pub struct Connection {
    stream: TcpStream,
    address: String,
    timeout: Duration,
    next_correlation_id: i32,
}

impl Connection {
    /// Connects to `address` (host:port) within `timeout`.
    pub async fn connect(address: &str, timeout: Duration) -> Result<Connection> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| anyhow!("cannot reach {address} within {} ms", timeout.as_millis()))?
            .with_context(|| format!("cannot reach {address}"))?;
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            stream,
            address: address.to_string(),
            timeout,
            next_correlation_id: 0,
        })
    }

    /// Connects to the first reachable broker of a comma-separated bootstrap list.
    pub async fn bootstrap(servers: &str, timeout: Duration) -> Result<Connection> {
        let mut last_error = anyhow!("no bootstrap server given");
        for address in servers.split(',').map(str::trim).filter(|address| !address.is_empty()) {
            match Connection::connect(address, timeout).await {
                Ok(connection) => return Ok(connection),
                Err(error) => last_error = error,
            }
        }
        // The error of the last server tried names its address.
        Err(last_error)
    }

    /// Sends `request` at `version` and waits (bounded) for its response.
    pub async fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response> {
        let address = self.address.clone();
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.round_trip(request, version))
            .await
            .map_err(|_| anyhow!("{address} did not answer within {} ms", timeout.as_millis()))?
            .with_context(|| format!("request to {address} failed"))
    }

    async fn round_trip<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("gregor-cli")));
        let mut frame = BytesMut::new();
        frame.put_i32(0); // the size, filled in below
        header.encode(&mut frame, R::header_version(version))?;
        request.encode(&mut frame, version)?;
        let size = i32::try_from(frame.len() - 4).context("request too large")?;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&frame).await?;

        let size = self.stream.read_i32().await?;
        let size = usize::try_from(size)
            .ok()
            .filter(|size| *size <= MAX_RESPONSE_BYTES)
            .ok_or_else(|| anyhow!("invalid response size {size}"))?;
        let mut body = vec![0; size];
        self.stream.read_exact(&mut body).await?;
        let mut body = Bytes::from(body);
        let response_header = ResponseHeader::decode(&mut body, R::Response::header_version(version))?;
        if response_header.correlation_id != correlation_id {
            bail!(
                "response for correlation id {} where {correlation_id} was expected",
                response_header.correlation_id
            );
        }
        let response = R::Response::decode(&mut body, version)?;
        if body.has_remaining() {
            bail!("{} bytes left over after the response", body.remaining());
        }
        Ok(response)
    }
}

/// Kafka's name of an error code, as its tools print it (e.g. `COORDINATOR_NOT_AVAILABLE`).
/// What FindCoordinator looks up: Kafka's key types.
#[derive(Clone, Copy)]
pub enum CoordinatorKey {
    Group = 0,
    Transaction = 1,
}

/// FindCoordinator for `key` through the bootstrap servers, then a
/// connection to that coordinator; returns its node id and the connection.
pub async fn coordinator(
    servers: &str,
    timeout: Duration,
    kind: CoordinatorKey,
    key: &str,
) -> Result<(i32, Connection)> {
    let mut bootstrap = Connection::bootstrap(servers, timeout).await?;
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(key.to_string()))
        .with_key_type(kind as i8);
    let coordinator = bootstrap.send(&request, 3).await?;
    if coordinator.error_code != 0 {
        let what = match kind {
            CoordinatorKey::Group => "group",
            CoordinatorKey::Transaction => "transactional id",
        };
        bail!(
            "cannot find the coordinator of {what} '{key}': {}",
            error_name(coordinator.error_code)
        );
    }
    let address = format!("{}:{}", coordinator.host, coordinator.port);
    Ok((coordinator.node_id.0, Connection::connect(&address, timeout).await?))
}

pub fn error_name(code: i16) -> String {
    let Some(error) = ResponseError::try_from_code(code) else {
        return "NONE".to_string();
    };
    if let ResponseError::Unknown(code) = error {
        return format!("UNKNOWN_ERROR_CODE_{code}");
    }
    let mut name = String::new();
    for (index, character) in error.to_string().chars().enumerate() {
        if character.is_ascii_uppercase() && index > 0 {
            name.push('_');
        }
        name.push(character.to_ascii_uppercase());
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(105), "TRANSACTIONAL_ID_NOT_FOUND");
        assert_eq!(error_name(15), "COORDINATOR_NOT_AVAILABLE");
        assert_eq!(error_name(-31000), "UNKNOWN_ERROR_CODE_-31000");
    }
}
