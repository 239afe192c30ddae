//! Kafka's schema encoding for the internal topics' keys and values. Fixed
//! (non-flexible) versions: big-endian integers, strings with an i16 length
//! (-1 for null), bytes with an i32 length. Flexible versions (KIP-482):
//! compact strings and arrays (unsigned varint length plus one, 0 for null)
//! and a tagged-field section after each structure.

pub fn put_i16(out: &mut Vec<u8>, value: i16) {
    out.extend_from_slice(&value.to_be_bytes());
}

pub fn put_str(out: &mut Vec<u8>, text: &str) {
    put_i16(out, text.len() as i16);
    out.extend_from_slice(text.as_bytes());
}

pub fn put_nullable_str(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => put_str(out, text),
        None => put_i16(out, -1),
    }
}

pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

pub fn put_unsigned_varint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A compact array's (or compact string's) length: `len + 1`.
pub fn put_compact_len(out: &mut Vec<u8>, len: usize) {
    put_unsigned_varint(out, len as u32 + 1);
}

pub fn put_compact_str(out: &mut Vec<u8>, text: &str) {
    put_compact_len(out, text.len());
    out.extend_from_slice(text.as_bytes());
}

pub fn put_compact_nullable_str(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => put_compact_str(out, text),
        None => put_unsigned_varint(out, 0),
    }
}

pub fn put_uuid(out: &mut Vec<u8>, id: &uuid::Uuid) {
    out.extend_from_slice(id.as_bytes());
}

/// An empty tagged-field section: Kafka omits tagged fields at their defaults.
pub fn put_no_tagged_fields(out: &mut Vec<u8>) {
    put_unsigned_varint(out, 0);
}

pub struct Reader<'a>(pub &'a [u8]);

impl Reader<'_> {
    pub fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    pub fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    pub fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    pub fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    pub fn nullable_string(&mut self) -> Option<Option<String>> {
        let length = self.i16()?;
        if length < 0 {
            return Some(None);
        }
        Some(Some(String::from_utf8(self.take(length as usize)?.to_vec()).ok()?))
    }
    pub fn string(&mut self) -> Option<String> {
        self.nullable_string()?
    }
    pub fn i8(&mut self) -> Option<i8> {
        Some(self.take(1)?[0] as i8)
    }
    pub fn uuid(&mut self) -> Option<uuid::Uuid> {
        Some(uuid::Uuid::from_bytes(self.take(16)?.try_into().ok()?))
    }
    pub fn unsigned_varint(&mut self) -> Option<u32> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1)?[0];
            value |= ((byte & 0x7f) as u32) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    /// A compact array's length; `None` inside for a null array. Lengths
    /// beyond what the remaining bytes could hold are refused.
    pub fn compact_len(&mut self) -> Option<Option<usize>> {
        match self.unsigned_varint()? {
            0 => Some(None),
            n if (n - 1) as usize > self.0.len() => None,
            n => Some(Some((n - 1) as usize)),
        }
    }
    pub fn compact_nullable_string(&mut self) -> Option<Option<String>> {
        let Some(length) = self.compact_len()? else {
            return Some(None);
        };
        Some(Some(String::from_utf8(self.take(length)?.to_vec()).ok()?))
    }
    pub fn compact_string(&mut self) -> Option<String> {
        self.compact_nullable_string()?
    }
    /// Skips a tagged-field section (fields this reader does not know are ignored, as in Kafka).
    pub fn skip_tagged_fields(&mut self) -> Option<()> {
        let count = self.unsigned_varint()?;
        for _ in 0..count {
            let _tag = self.unsigned_varint()?;
            let size = self.unsigned_varint()? as usize;
            self.take(size)?;
        }
        Some(())
    }
    pub fn bytes(&mut self) -> Option<Vec<u8>> {
        let length = self.i32()?;
        if length < 0 {
            return Some(Vec::new());
        }
        Some(self.take(length as usize)?.to_vec())
    }
}
