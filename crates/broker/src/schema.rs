//! Kafka's fixed (non-flexible) schema encoding for the internal topics'
//! keys and values: big-endian integers, strings with an i16 length (-1 for
//! null), bytes with an i32 length.

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
    pub fn bytes(&mut self) -> Option<Vec<u8>> {
        let length = self.i32()?;
        if length < 0 {
            return Some(Vec::new());
        }
        Some(self.take(length as usize)?.to_vec())
    }
}
