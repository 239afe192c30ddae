//! Forward scans over the batch headers of a segment file, reading a block
//! at a time so that walking a few KiB of small batches costs one pread.
//! Used from an index position to find a batch; never touches records.

use std::io;

use crate::batch::{BatchHeader, CURRENT_MAGIC, HEADER_SIZE};
use crate::storage::StorageFile;

const BLOCK: usize = 8192;
/// Batches at least this large get header-only reads: the next header is
/// too far away for a block read to catch it.
const LARGE_BATCH: u64 = 1024;

/// A batch header found at a file position.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Located {
    pub position: u64,
    pub header: BatchHeader,
}

impl Located {
    pub fn end(&self) -> u64 {
        self.position + self.header.size() as u64
    }
}

pub(crate) struct HeaderScanner<'a> {
    file: &'a dyn StorageFile,
    /// Bytes past `limit` are not (yet) part of the segment.
    limit: u64,
    position: u64,
    block: [u8; BLOCK],
    block_start: u64,
    block_len: usize,
    /// The size of the last batch seen, to size the next read.
    last_batch_size: u64,
}

impl<'a> HeaderScanner<'a> {
    pub fn new(file: &'a dyn StorageFile, position: u64, limit: u64) -> Self {
        HeaderScanner {
            file,
            limit,
            position,
            block: [0; BLOCK],
            block_start: 0,
            block_len: 0,
            last_batch_size: 0,
        }
    }

    /// The next batch header, or `None` at `limit`. A header that is not a
    /// plausible v2 batch inside the limit is an `InvalidData` error: the
    /// position came from a damaged index, or the segment is corrupt.
    pub fn next_batch(&mut self) -> io::Result<Option<Located>> {
        if self.position >= self.limit {
            return Ok(None);
        }
        let position = self.position;
        if self.limit - position < HEADER_SIZE as u64 {
            return Err(invalid(position, "a partial batch header"));
        }
        let in_block =
            position >= self.block_start && position + HEADER_SIZE as u64 <= self.block_start + self.block_len as u64;
        if !in_block {
            // The first read and reads among large batches fetch one header;
            // among small batches, a block holding many.
            let small_batches = self.last_batch_size > 0 && self.last_batch_size < LARGE_BATCH;
            let want = if small_batches { BLOCK } else { HEADER_SIZE };
            let len = (want as u64).min(self.limit - position) as usize;
            self.file.read_exact_at(&mut self.block[..len], position)?;
            self.block_start = position;
            self.block_len = len;
        }
        let at = (position - self.block_start) as usize;
        let header = BatchHeader::parse(&self.block[at..at + HEADER_SIZE]);
        if header.magic != CURRENT_MAGIC || header.size() < HEADER_SIZE as i64 {
            return Err(invalid(position, "not a v2 batch header"));
        }
        if position + header.size() as u64 > self.limit {
            return Err(invalid(position, "a batch running past the segment's end"));
        }
        if header.last_offset_delta < 0 {
            return Err(invalid(position, "a negative last offset delta"));
        }
        self.position = position + header.size() as u64;
        self.last_batch_size = header.size() as u64;
        Ok(Some(Located { position, header }))
    }
}

fn invalid(position: u64, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("segment holds {what} at position {position}"),
    )
}
