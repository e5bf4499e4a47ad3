//! The Confluent wire format: what Confluent's serializers put in a record's key or value.
//!
//! ```text
//! byte 0      magic byte, 0
//! bytes 1-4   schema id, big-endian i32
//! Protobuf:   message indexes: zig-zag varint count, then each index as a zig-zag varint;
//!             the common case [0] (the schema's first message) is the single byte 0
//! rest        the payload: an Avro binary datum, a Protobuf message, JSON text
//! ```
//!
//! Decoding trusts nothing: a short buffer, another magic byte, a varint that runs past the end
//! or over 32 bits, or more message indexes than bytes left are all
//! [`ErrorKind::Serialization`](crate::ErrorKind::Serialization) errors naming what was wrong.

use crate::error::{Error, Result};

/// The magic byte every framed key or value starts with.
pub const MAGIC_BYTE: u8 = 0;

/// The framing's length before the payload (without Protobuf message indexes).
pub const HEADER_LEN: usize = 5;

/// A framed key or value, split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framed<'a> {
    /// The schema id.
    pub schema_id: i32,
    /// The payload after the header (for Protobuf, after the message indexes).
    pub payload: &'a [u8],
}

/// Splits a framed key or value into its schema id and payload (Avro, JSON Schema).
pub fn decode(data: &[u8]) -> Result<Framed<'_>> {
    match data {
        [] => Err(Error::serialization(
            "empty data: no Confluent wire-format header (magic byte and schema id)",
        )),
        [m, ..] if *m != MAGIC_BYTE => Err(Error::serialization(format!(
            "magic byte {m:#04x} is not the Confluent wire format's 0 (not written by a schema registry serializer?)"
        ))),
        [_, a, b, c, d, payload @ ..] => Ok(Framed {
            schema_id: i32::from_be_bytes([*a, *b, *c, *d]),
            payload,
        }),
        _ => Err(Error::serialization(format!(
            "{} bytes: shorter than the Confluent wire-format header (5 bytes)",
            data.len()
        ))),
    }
}

/// Writes the header for `schema_id` to `out`.
pub fn encode_header(schema_id: i32, out: &mut Vec<u8>) {
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// Splits the Protobuf message indexes off a payload (after [`decode`]): the path of the
/// message in the schema's file (`[0]` is its first top-level message, `[1, 0]` the first
/// nested message of the second).
pub fn decode_message_indexes(payload: &[u8]) -> Result<(Vec<i32>, &[u8])> {
    let (count, mut rest) = read_zigzag(payload)?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    // Each index takes at least a byte: a count beyond what is left is corrupt.
    if count < 0 || count as usize > rest.len() {
        return Err(Error::serialization(format!(
            "Protobuf message index count {count} does not fit the {} bytes left",
            rest.len()
        )));
    }
    let mut indexes = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (i, r) = read_zigzag(rest)?;
        if i < 0 {
            return Err(Error::serialization(format!("negative Protobuf message index {i}")));
        }
        indexes.push(i);
        rest = r;
    }
    Ok((indexes, rest))
}

/// Writes Protobuf message indexes as Confluent's serializer does: `[0]` as the single byte 0.
pub fn encode_message_indexes(indexes: &[i32], out: &mut Vec<u8>) {
    if indexes == [0] {
        out.push(0);
        return;
    }
    write_zigzag(indexes.len() as i32, out);
    for &i in indexes {
        write_zigzag(i, out);
    }
}

fn read_zigzag(data: &[u8]) -> Result<(i32, &[u8])> {
    let mut value: u32 = 0;
    for (n, &b) in data.iter().enumerate().take(5) {
        if n == 4 && b > 0x0f {
            return Err(Error::serialization("Protobuf message index varint exceeds 32 bits"));
        }
        value |= u32::from(b & 0x7f) << (7 * n);
        if b & 0x80 == 0 {
            let decoded = ((value >> 1) as i32) ^ -((value & 1) as i32);
            return Ok((decoded, &data[n + 1..]));
        }
    }
    Err(Error::serialization(if data.len() < 5 {
        "Protobuf message indexes truncated (a varint runs past the end)"
    } else {
        "Protobuf message index varint exceeds 32 bits"
    }))
}

fn write_zigzag(v: i32, out: &mut Vec<u8>) {
    let mut u = ((v << 1) ^ (v >> 31)) as u32;
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_refusals() {
        let mut out = Vec::new();
        encode_header(0x0102_0304, &mut out);
        out.extend_from_slice(b"payload");
        assert_eq!(&out[..5], &[0, 1, 2, 3, 4]);
        let f = decode(&out).unwrap();
        assert_eq!((f.schema_id, f.payload), (0x0102_0304, &b"payload"[..]));
        for (bad, says) in [
            (&b""[..], "empty"),
            (&[1u8, 0, 0, 0, 1][..], "magic byte 0x01"),
            (&[0u8, 0, 0][..], "3 bytes"),
        ] {
            let e = decode(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Serialization);
            assert!(e.to_string().contains(says), "{e}");
        }
    }

    #[test]
    fn message_indexes_as_confluent_writes_them() {
        let mut out = Vec::new();
        encode_message_indexes(&[0], &mut out);
        assert_eq!(out, [0]);
        out.clear();
        encode_message_indexes(&[1, 0, 70], &mut out);
        // count 3 -> 6, 1 -> 2, 0 -> 0, 70 -> 140 = 0x8c 0x01
        assert_eq!(out, [6, 2, 0, 0x8c, 0x01]);
        out.push(42);
        let (idx, rest) = decode_message_indexes(&out).unwrap();
        assert_eq!((idx, rest), (vec![1, 0, 70], &[42u8][..]));
        assert_eq!(decode_message_indexes(&[0, 9]).unwrap(), (vec![0], &[9u8][..]));
        // A count of a million with three bytes left; a varint that never ends; a negative index.
        for bad in [
            &[0x80u8, 0x89, 0x7a, 1, 2][..],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01][..],
            &[2, 1][..],
            &[0x81][..],
        ] {
            assert!(decode_message_indexes(bad).is_err(), "{bad:?}");
        }
    }
}
