//! ApiVersions (v0-v4), with KIP-511's fallback for versions it does not know.

use bytes::BytesMut;
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::protocol::Encodable;

use super::SUPPORTED_APIS;

const UNSUPPORTED_VERSION: i16 = 35;

pub fn handle() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(supported_versions())
}

fn supported_versions() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|key| {
            let range = key.valid_versions();
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(range.min)
                .with_max_version(range.max)
        })
        .collect()
}

/// The framed v0 answer to an ApiVersions request of an unknown version:
/// UNSUPPORTED_VERSION plus the ranges, so the client can retry with one it shares.
pub fn unsupported_version_response(correlation_id: i32, out: &mut BytesMut) {
    let response = ApiVersionsResponse::default()
        .with_error_code(UNSUPPORTED_VERSION)
        .with_api_keys(supported_versions());
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&correlation_id.to_be_bytes());
    response.encode(out, 0).expect("ApiVersions v0 always encodes");
    let size = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}
