//! The wire codec: explicit, versioned, length-bounded, and panic-free.
//!
//! Every integer is little-endian and fixed width; every variable-length field
//! is prefixed by a `u32` length that is checked against a caller-supplied
//! limit *before* anything is allocated. Decoding a hostile byte string can
//! fail, but never panic and never allocate more than the limits allow.

use crate::types::Digest;
use thiserror::Error;

/// Version byte at the start of every framed message. A peer speaking another
/// version is rejected up front instead of being misparsed.
pub const WIRE_VERSION: u8 = 1;

/// Largest framed message a node accepts: a full block plus headroom.
pub const MAX_MESSAGE_BYTES: usize = crate::types::MAX_PAYLOAD_BYTES + 64 * 1024;

/// Why a byte string could not be decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("message truncated: needed {needed} more bytes")]
    Truncated { needed: usize },
    #[error("field of {len} bytes exceeds its limit of {limit}")]
    TooLong { len: usize, limit: usize },
    #[error("message of {len} bytes exceeds the limit of {limit}")]
    Oversized { len: usize, limit: usize },
    #[error("unsupported wire version {0}")]
    Version(u8),
    #[error("unknown {what} tag {tag}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("{0} trailing bytes after message")]
    Trailing(usize),
    #[error("invalid field: {0}")]
    Invalid(&'static str),
}

/// Appends fields to a byte buffer.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            buf: Vec::with_capacity(128),
        }
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn digest(&mut self, d: &Digest) {
        self.buf.extend_from_slice(&d.0);
    }
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
    /// A length-prefixed byte string.
    pub fn bytes(&mut self, bytes: &[u8]) {
        let len = u32::try_from(bytes.len()).expect("field longer than 4 GiB");
        self.u32(len);
        self.buf.extend_from_slice(bytes);
    }
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads fields from an untrusted byte slice, checking every bound.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated {
                needed: n - self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub fn digest(&mut self) -> Result<Digest, DecodeError> {
        Ok(Digest(self.array()?))
    }
    /// A length-prefixed byte string of at most `limit` bytes.
    pub fn bytes(&mut self, limit: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        if len > limit {
            return Err(DecodeError::TooLong { len, limit });
        }
        self.take(len)
    }
    /// A `u16` element count of at most `limit`, checked before any allocation.
    pub fn count(&mut self, limit: usize) -> Result<usize, DecodeError> {
        let len = self.u16()? as usize;
        if len > limit {
            return Err(DecodeError::TooLong { len, limit });
        }
        Ok(len)
    }
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }
    /// Fails unless every byte was consumed: trailing garbage is malformed.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_respect_their_limit_before_allocating() {
        let mut w = Writer::new();
        w.u32(u32::MAX);
        let mut r = Reader::new(w.as_slice());
        assert_eq!(
            r.bytes(16),
            Err(DecodeError::TooLong {
                len: u32::MAX as usize,
                limit: 16
            })
        );
    }

    #[test]
    fn truncated_input_is_an_error() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u64(), Err(DecodeError::Truncated { needed: 5 }));
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut r = Reader::new(&[1, 2]);
        r.u8().unwrap();
        assert_eq!(r.finish(), Err(DecodeError::Trailing(1)));
    }
}
