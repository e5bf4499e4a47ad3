//! Varints as the record format and flexible message versions use them.
//!
//! Record fields are zig-zag varints (protobuf style, KIP-98); flexible versions (KIP-482)
//! use plain unsigned LEB128. Decoders are bounded: 5 bytes for 32 bits, 10 for 64 bits.

use bytes::BufMut;

use crate::error::WireError;

/// Decodes an unsigned LEB128 32-bit varint from the front of `buf`, advancing it.
#[inline]
pub fn get_uvarint(buf: &mut &[u8], what: &'static str) -> Result<u32, WireError> {
    let mut value: u32 = 0;
    for i in 0..5 {
        let (&b, rest) = buf.split_first().ok_or(WireError::Truncated(what))?;
        *buf = rest;
        if i == 4 && b > 0x0f {
            return Err(WireError::VarintOverflow(what));
        }
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError::VarintOverflow(what))
}

/// Decodes an unsigned LEB128 64-bit varint from the front of `buf`, advancing it.
#[inline]
pub fn get_uvarlong(buf: &mut &[u8], what: &'static str) -> Result<u64, WireError> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let (&b, rest) = buf.split_first().ok_or(WireError::Truncated(what))?;
        *buf = rest;
        if i == 9 && b > 0x01 {
            return Err(WireError::VarintOverflow(what));
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(WireError::VarintOverflow(what))
}

/// Decodes a zig-zag 32-bit varint (record `varint`).
#[inline]
pub fn get_varint(buf: &mut &[u8], what: &'static str) -> Result<i32, WireError> {
    // The first byte is the common case in records (small lengths and deltas).
    if let Some((&b, rest)) = buf.split_first() {
        if b & 0x80 == 0 {
            *buf = rest;
            let z = u32::from(b);
            return Ok(((z >> 1) as i32) ^ -((z & 1) as i32));
        }
    }
    let z = get_uvarint(buf, what)?;
    Ok(((z >> 1) as i32) ^ -((z & 1) as i32))
}

/// Decodes a zig-zag 64-bit varint (record `varlong`).
#[inline]
pub fn get_varlong(buf: &mut &[u8], what: &'static str) -> Result<i64, WireError> {
    let z = get_uvarlong(buf, what)?;
    Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
}

/// Appends an unsigned LEB128 32-bit varint.
#[inline]
pub fn put_uvarint<B: BufMut>(buf: &mut B, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Appends an unsigned LEB128 64-bit varint.
#[inline]
pub fn put_uvarlong<B: BufMut>(buf: &mut B, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Appends a zig-zag 32-bit varint.
#[inline]
pub fn put_varint<B: BufMut>(buf: &mut B, v: i32) {
    put_uvarint(buf, ((v << 1) ^ (v >> 31)) as u32);
}

/// Appends a zig-zag 64-bit varint.
#[inline]
pub fn put_varlong<B: BufMut>(buf: &mut B, v: i64) {
    put_uvarlong(buf, ((v << 1) ^ (v >> 63)) as u64);
}

/// Encoded size of an unsigned 32-bit varint.
#[inline]
pub const fn uvarint_len(v: u32) -> usize {
    // 1 byte per started group of 7 bits, at least one.
    let bits = 32 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Encoded size of an unsigned 64-bit varint.
#[inline]
pub const fn uvarlong_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Encoded size of a zig-zag 32-bit varint.
#[inline]
pub const fn varint_len(v: i32) -> usize {
    uvarint_len(((v << 1) ^ (v >> 31)) as u32)
}

/// Encoded size of a zig-zag 64-bit varint.
#[inline]
pub const fn varlong_len(v: i64) -> usize {
    uvarlong_len(((v << 1) ^ (v >> 63)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let mut b = Vec::new();
        put_varint(&mut b, 0);
        put_varint(&mut b, -1);
        put_varint(&mut b, 1);
        put_varint(&mut b, 63);
        put_varint(&mut b, -64);
        put_varint(&mut b, 64);
        assert_eq!(b, [0x00, 0x01, 0x02, 0x7e, 0x7f, 0x80, 0x01]);
    }

    #[test]
    fn overflow_is_an_error() {
        let mut s: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(get_uvarint(&mut s, "x"), Err(WireError::VarintOverflow("x")));
        let mut s: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0x1f];
        assert_eq!(get_uvarint(&mut s, "x"), Err(WireError::VarintOverflow("x")));
        let mut s: &[u8] = &[0xff; 11];
        assert_eq!(get_uvarlong(&mut s, "y"), Err(WireError::VarintOverflow("y")));
        let mut s: &[u8] = &[0x80, 0x80];
        assert_eq!(get_varint(&mut s, "z"), Err(WireError::Truncated("z")));
        let mut s: &[u8] = &[];
        assert_eq!(get_varlong(&mut s, "z"), Err(WireError::Truncated("z")));
    }

    proptest! {
        #[test]
        fn varint_round_trip(v in any::<i32>()) {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            prop_assert_eq!(b.len(), varint_len(v));
            let mut s = &b[..];
            prop_assert_eq!(get_varint(&mut s, "v")?, v);
            prop_assert!(s.is_empty());
        }

        #[test]
        fn varlong_round_trip(v in any::<i64>()) {
            let mut b = Vec::new();
            put_varlong(&mut b, v);
            prop_assert_eq!(b.len(), varlong_len(v));
            let mut s = &b[..];
            prop_assert_eq!(get_varlong(&mut s, "v")?, v);
            prop_assert!(s.is_empty());
        }

        #[test]
        fn uvarint_round_trip(v in any::<u32>()) {
            let mut b = Vec::new();
            put_uvarint(&mut b, v);
            prop_assert_eq!(b.len(), uvarint_len(v));
            let mut s = &b[..];
            prop_assert_eq!(get_uvarint(&mut s, "v")?, v);
        }

        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..16)) {
            let mut s = &data[..];
            let _ = get_varint(&mut s, "a");
            let mut s = &data[..];
            let _ = get_varlong(&mut s, "a");
        }
    }
}
