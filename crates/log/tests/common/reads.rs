//! Reading a whole log back in the tests, through its public API.

use gregor_log::Log;

use crate::encoder::{header, split_batches};

/// Every batch of `log` from `from` up to its log end offset, as stored.
pub fn read_all(log: &Log, from: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = from;
    while let Some(slice) = log.read(offset, 1 << 20, i64::MAX).unwrap() {
        let start = out.len();
        log.read_slice(&slice, &mut out).unwrap();
        offset = header(split_batches(&out[start..]).last().unwrap()).last_offset() + 1;
    }
    out
}
