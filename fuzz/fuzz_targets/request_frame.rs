//! The request frame and header decoder: the bytes after the 4-byte size
//! prefix go through `dispatch::decode`, the decoding the server runs on
//! every frame (api key and version checks, the header version the api calls
//! for, then the body decoder of every API the broker serves). Any input must
//! end in a request or a refusal, never a panic.
#![no_main]

use bytes::Bytes;
use gregor_broker::dispatch::{self, Refusal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    match dispatch::decode(Bytes::copy_from_slice(frame)) {
        Ok(request) => {
            // The header's correlation id is the one the response will carry:
            // bytes 4..8 of the frame, whatever header version was decoded.
            let correlation_id = i32::from_be_bytes(frame[4..8].try_into().expect("a decoded frame has a header"));
            assert_eq!(request.header.correlation_id, correlation_id);
            assert_eq!(request.header.request_api_version, request.api_version);
        }
        Err(Refusal::UnsupportedApiVersions { .. } | Refusal::Close(_)) => {}
    }
});
