//! The one dispatch point: every request is decoded here, handed to its API's
//! handler with a request context, and its response encoded. Authentication,
//! ACLs, quotas and per-API metrics hook in here later.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::api;
use crate::state::BrokerState;

pub struct RequestContext {
    pub connection_id: u64,
    pub peer: SocketAddr,
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

/// Decodes `frame`, runs its handler and writes the framed response into `out`.
pub async fn handle(
    state: &Arc<BrokerState>,
    connection: &RequestContext,
    mut frame: Bytes,
    out: &mut BytesMut,
) -> Outcome {
    if frame.len() < 8 {
        return Outcome::Close(format!("request of {} bytes is too short for a header", frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(api_key) = ApiKey::try_from(raw_key) else {
        return Outcome::Close(format!("unknown api key {raw_key}"));
    };
    if !api::is_supported(api_key) {
        return Outcome::Close(format!("api {api_key:?} is not supported by this broker"));
    }
    let supported = api_key.valid_versions();
    if api_version < supported.min || api_version > supported.max {
        if api_key == ApiKey::ApiVersions {
            // KIP-511: answer an unknown ApiVersions version in v0 with the supported ranges.
            api::api_versions::unsupported_version_response(correlation_id, out);
            return Outcome::Respond;
        }
        return Outcome::Close(format!(
            "{api_key:?} v{api_version} is not supported (v{}-v{})",
            supported.min, supported.max
        ));
    }
    let header = match RequestHeader::decode(&mut frame, api_key.request_header_version(api_version)) {
        Ok(header) => header,
        Err(error) => return Outcome::Close(format!("malformed request header: {error}")),
    };
    let body = match RequestKind::decode(api_key, &mut frame, api_version) {
        Ok(body) => body,
        Err(error) => return Outcome::Close(format!("malformed {api_key:?} v{api_version} request: {error}")),
    };
    if frame.has_remaining() {
        tracing::debug!(api = ?api_key, trailing = frame.remaining(), "ignoring trailing request bytes");
    }
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
