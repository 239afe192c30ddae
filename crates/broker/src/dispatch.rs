//! The one dispatch point: every request is decoded here, handed to its API's
//! handler with a request context, and its response encoded. Authentication,
//! ACLs, quotas and per-API metrics hook in here later.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::api;
use crate::state::BrokerState;

pub struct RequestContext {
    pub connection_id: u64,
    pub peer: SocketAddr,
    pub next_request: NextRequest,
}

/// Lets the connection start handling its next request before this one is
/// answered. A handler releases it once everything a later request must
/// see is in place: produce after its appends, before the fsync acks=-1
/// waits for. A request that never releases it is finished and answered
/// before the next one starts, as Kafka handles every request.
#[derive(Default)]
pub struct NextRequest(Mutex<Option<tokio::sync::oneshot::Sender<()>>>);

impl NextRequest {
    /// A request's handle, and what fires when the request releases it.
    pub fn new() -> (NextRequest, tokio::sync::oneshot::Receiver<()>) {
        let (release, released) = tokio::sync::oneshot::channel();
        (NextRequest(Mutex::new(Some(release))), released)
    }

    /// Takes the release out, to be fired (`send(())`) from blocking work.
    pub fn take(&self) -> Option<tokio::sync::oneshot::Sender<()>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Everything a handler knows about the request it serves.
pub struct Request<'a> {
    pub connection: &'a RequestContext,
    pub api_key: ApiKey,
    pub api_version: i16,
    pub client_id: Option<StrBytes>,
}

pub enum Outcome {
    Respond,
    /// Produce with acks=0 is never answered.
    NoResponse,
    Close(String),
}

/// A request frame decoded as the server decodes it.
pub struct DecodedRequest {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub header: RequestHeader,
    pub body: RequestKind,
}

/// Why a frame was not decoded into a request.
pub enum Refusal {
    /// KIP-511: an ApiVersions request in a version this broker does not
    /// know is answered in v0 with the supported ranges.
    UnsupportedApiVersions { correlation_id: i32 },
    /// Anything else that does not decode closes the connection, for this reason.
    Close(String),
}

/// Decodes `frame` (the bytes after the size prefix): api key and version
/// checks, then the header in the version the api key and version call for,
/// then the body. Public so the fuzz targets decode exactly as the server does.
pub fn decode(mut frame: Bytes) -> Result<DecodedRequest, Refusal> {
    if frame.len() < 8 {
        return Err(Refusal::Close(format!(
            "request of {} bytes is too short for a header",
            frame.len()
        )));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(api_key) = ApiKey::try_from(raw_key) else {
        return Err(Refusal::Close(format!("unknown api key {raw_key}")));
    };
    if !api::is_supported(api_key) {
        return Err(Refusal::Close(format!(
            "api {api_key:?} is not supported by this broker"
        )));
    }
    let supported = api_key.valid_versions();
    if api_version < supported.min || api_version > supported.max {
        if api_key == ApiKey::ApiVersions {
            return Err(Refusal::UnsupportedApiVersions { correlation_id });
        }
        return Err(Refusal::Close(format!(
            "{api_key:?} v{api_version} is not supported (v{}-v{})",
            supported.min, supported.max
        )));
    }
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(api_version))
        .map_err(|error| Refusal::Close(format!("malformed request header: {error}")))?;
    let body = RequestKind::decode(api_key, &mut frame, api_version)
        .map_err(|error| Refusal::Close(format!("malformed {api_key:?} v{api_version} request: {error}")))?;
    if frame.has_remaining() {
        tracing::debug!(api = ?api_key, trailing = frame.remaining(), "ignoring trailing request bytes");
    }
    Ok(DecodedRequest {
        api_key,
        api_version,
        header,
        body,
    })
}

/// Decodes `frame`, runs its handler and writes the framed response into `out`.
pub async fn handle(
    state: &Arc<BrokerState>,
    connection: &RequestContext,
    frame: Bytes,
    out: &mut BytesMut,
) -> Outcome {
    let DecodedRequest {
        api_key,
        api_version,
        header,
        body,
    } = match decode(frame) {
        Ok(decoded) => decoded,
        Err(Refusal::UnsupportedApiVersions { correlation_id }) => {
            api::api_versions::unsupported_version_response(correlation_id, out);
            return Outcome::Respond;
        }
        Err(Refusal::Close(reason)) => return Outcome::Close(reason),
    };
    let correlation_id = header.correlation_id;
    let request = Request {
        connection,
        api_key,
        api_version,
        client_id: header.client_id,
    };
    let Some(response) = api::handle(state, &request, body).await else {
        return Outcome::NoResponse;
    };
    match encode(correlation_id, api_key, api_version, &response, out) {
        Ok(()) => Outcome::Respond,
        Err(error) => Outcome::Close(format!(
            "cannot encode the {api_key:?} v{api_version} response: {error}"
        )),
    }
}

/// Writes size, response header and body.
fn encode(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    response: &ResponseKind,
    out: &mut BytesMut,
) -> Result<(), String> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(out, api_key.response_header_version(version))
        .map_err(|e| e.to_string())?;
    response.encode(out, version).map_err(|e| e.to_string())?;
    let size = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_with_close(frame: &[u8]) -> bool {
        matches!(decode(Bytes::copy_from_slice(frame)), Err(Refusal::Close(_)))
    }

    /// Found by the `request_frame` fuzz target: an AlterConfigs v1 request
    /// whose resources array claims 553,778,695 entries in 5 bytes. The
    /// protocol crate reserved room for all of them before decoding one (a
    /// 48 GB allocation), and the failed allocation aborted the broker.
    #[test]
    fn an_array_longer_than_its_frame_closes_the_connection() {
        let frame = [
            0x00, 0x21, 0x00, 0x01, // AlterConfigs v1
            0x00, 0x20, 0x08, 0x00, // correlation id
            0x00, 0x01, 0x00, // client id "\0"
            0x21, 0x01, 0xfe, 0x07, // resources: 553,778,695 of them
            0x0a,
        ];
        assert!(refused_with_close(&frame));
    }

    /// The same for a flexible version's compact array: a Metadata v12
    /// request claiming 4,294,967,294 topics.
    #[test]
    fn a_compact_array_longer_than_its_frame_closes_the_connection() {
        let frame = [
            0x00, 0x03, 0x00, 0x0c, // Metadata v12
            0x00, 0x00, 0x00, 0x01, // correlation id
            0x00, 0x00, // empty client id
            0x00, // no tagged fields in the header
            0xff, 0xff, 0xff, 0xff, 0x0f, // topics: 2^32 - 2 of them
            0x00,
        ];
        assert!(refused_with_close(&frame));
    }

    #[test]
    fn an_unknown_api_versions_version_gets_the_kip_511_answer() {
        let frame = [0x00, 0x12, 0x7f, 0xff, 0x00, 0x00, 0x00, 0x07];
        assert!(matches!(
            decode(Bytes::copy_from_slice(&frame)),
            Err(Refusal::UnsupportedApiVersions { correlation_id: 7 })
        ));
    }
}
