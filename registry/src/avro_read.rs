//! The bounded byte reader of the compiled Avro decoders (`avro_plan`, `avro_plan_serde`):
//! every length and count is checked against the bytes left before it is used, varints are
//! at most 10 bytes, and the items of arrays and maps that can take no bytes are capped per
//! datum. A failure is a [`Fail`]: the registry [`Error`] and the record fields it happened
//! in, boxed so that the `Result`s of the hot path stay one word wide.

use crate::error::Error;

/// Deepest nesting of records, arrays, maps and unions read.
pub(crate) const MAX_DEPTH: usize = 256;

/// Most elements, in all, of arrays and maps whose items can take no bytes (nulls, empty
/// records) in one datum: they cannot be bounded by the bytes left (a few bytes could
/// otherwise declare billions of them).
pub(crate) const MAX_ZERO_SIZE_ITEMS: usize = 1 << 16;

/// A decoding or encoding failure: the error, and the record fields (innermost first) it
/// happened in, added as the failure unwinds through them.
#[derive(Debug)]
pub(crate) struct Fail(Box<FailInner>);

#[derive(Debug)]
struct FailInner {
    error: Error,
    path: Vec<String>,
    /// The target type's message (serde's), not the datum's.
    from_serde: bool,
}

impl Fail {
    /// A serialization error with `message`.
    #[cold]
    pub(crate) fn new(message: impl Into<String>) -> Fail {
        Fail::from(Error::serialization(message))
    }

    /// This failure, inside the record field `name`.
    #[cold]
    pub(crate) fn in_field(mut self, name: &str) -> Fail {
        self.0.path.push(name.to_owned());
        self
    }

    /// A failure of the serde type being read into, with serde's message.
    #[cold]
    pub(crate) fn from_serde(message: String) -> Fail {
        let mut f = Fail::new(message);
        f.0.from_serde = true;
        f
    }

    /// Whether this is the serde type's failure (see [`Fail::from_serde`]).
    pub(crate) fn is_from_serde(&self) -> bool {
        self.0.from_serde
    }

    /// The registry error, its message naming the field path (`in field a.b.c`).
    pub(crate) fn into_error(self) -> Error {
        let FailInner { error, mut path, .. } = *self.0;
        if path.is_empty() {
            return error;
        }
        path.reverse();
        error.with_message_suffix(&format!(" (in field {})", path.join(".")))
    }
}

impl From<Error> for Fail {
    #[cold]
    fn from(error: Error) -> Fail {
        Fail(Box::new(FailInner {
            error,
            path: Vec::new(),
            from_serde: false,
        }))
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.error.message())?;
        if !self.0.path.is_empty() {
            let mut path = self.0.path.clone();
            path.reverse();
            write!(f, " (in field {})", path.join("."))?;
        }
        Ok(())
    }
}

impl std::error::Error for Fail {}

/// A result of the compiled codecs.
pub(crate) type R<T> = std::result::Result<T, Fail>;

#[cold]
fn short(what: &str) -> Fail {
    Fail::new(format!(
        "the Avro datum ends inside {what} (truncated, or not written with this schema)"
    ))
}

#[cold]
fn varint_too_long() -> Fail {
    Fail::new("an Avro varint is longer than 64 bits")
}

/// Reads an Avro binary datum from a slice, never past its end.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    pub(crate) data: &'a [u8],
    zero_size_items: usize,
    /// Serde structs take records by field name only (see `avro_plan_serde::decode`).
    pub(crate) by_name: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader {
            data,
            zero_size_items: 0,
            by_name: false,
        }
    }

    /// A zig-zag varint `long`; one byte (the common case) without a loop.
    #[inline]
    pub(crate) fn long(&mut self) -> R<i64> {
        if let Some((&b, rest)) = self.data.split_first() {
            if b < 0x80 {
                self.data = rest;
                let v = u64::from(b);
                return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
            }
        }
        self.long_slow()
    }

    #[inline(never)]
    fn long_slow(&mut self) -> R<i64> {
        // With 10 bytes left no byte needs its own bounds check.
        if let Some(b) = self.data.first_chunk::<10>() {
            let mut v: u64 = 0;
            for (i, &x) in b.iter().enumerate() {
                v |= u64::from(x & 0x7f) << (7 * i);
                if x & 0x80 == 0 {
                    if i == 9 && x > 1 {
                        return Err(varint_too_long());
                    }
                    self.data = &self.data[i + 1..];
                    return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
                }
            }
            return Err(varint_too_long());
        }
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some((&b, rest)) = self.data.split_first() else {
                return Err(short("a number"));
            };
            self.data = rest;
            if i == 9 && b > 1 {
                return Err(varint_too_long());
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
            }
        }
        Err(varint_too_long())
    }

    /// A zig-zag varint `int`: a `long` in the 32-bit range.
    #[inline]
    pub(crate) fn int(&mut self) -> R<i32> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| Fail::new(format!("Avro int {v} is out of the 32-bit range")))
    }

    #[inline]
    pub(crate) fn boolean(&mut self) -> R<bool> {
        match self.data.split_first() {
            Some((&0, rest)) => {
                self.data = rest;
                Ok(false)
            }
            Some((&1, rest)) => {
                self.data = rest;
                Ok(true)
            }
            Some((&b, _)) => Err(Fail::new(format!("Avro boolean byte {b} is neither 0 nor 1"))),
            None => Err(short("a boolean")),
        }
    }

    #[inline]
    pub(crate) fn float(&mut self) -> R<f32> {
        let b = self.array::<4>("a float")?;
        Ok(f32::from_le_bytes(b))
    }

    #[inline]
    pub(crate) fn double(&mut self) -> R<f64> {
        let b = self.array::<8>("a double")?;
        Ok(f64::from_le_bytes(b))
    }

    #[inline]
    pub(crate) fn array<const N: usize>(&mut self, what: &'static str) -> R<[u8; N]> {
        match self.data.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.data = rest;
                Ok(*head)
            }
            None => Err(short(what)),
        }
    }

    /// The next `n` bytes.
    #[inline]
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> R<&'a [u8]> {
        if n > self.data.len() {
            return Err(self.too_long(n, what));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    #[cold]
    fn too_long(&self, n: usize, what: &str) -> Fail {
        Fail::new(format!(
            "{what} of {n} bytes but only {} are left (truncated, or not written with this schema)",
            self.data.len()
        ))
    }

    /// A length-prefixed byte string (bytes, string, a map key).
    #[inline]
    pub(crate) fn bytes(&mut self, what: &'static str) -> R<&'a [u8]> {
        let n = self.long()?;
        match usize::try_from(n) {
            Ok(n) => self.take(n, what),
            Err(_) => Err(Fail::new(format!("{what} with a negative length {n}"))),
        }
    }

    /// A length-prefixed UTF-8 string.
    #[inline]
    pub(crate) fn str(&mut self, what: &'static str) -> R<&'a str> {
        utf8(self.bytes(what)?, what)
    }

    /// The element count of the next array or map block (0 ends it); a negative count is
    /// followed by the block's size in bytes, which is read and ignored. The count is
    /// checked against the bytes left (each item takes at least one), or, for items that can
    /// take none (`zero_size`), against [`MAX_ZERO_SIZE_ITEMS`] for the whole datum.
    #[inline]
    pub(crate) fn block(&mut self, zero_size: bool, what: &'static str) -> R<usize> {
        // A count of 0 to 63 items that take a byte or more (the common case) in one byte.
        if let Some((&b, rest)) = self.data.split_first() {
            let count = usize::from(b >> 1);
            if b & 0x81 == 0 && (count == 0 || (!zero_size && count <= rest.len())) {
                self.data = rest;
                return Ok(count);
            }
        }
        self.block_slow(zero_size, what)
    }

    #[inline(never)]
    fn block_slow(&mut self, zero_size: bool, what: &'static str) -> R<usize> {
        let n = self.long()?;
        let count = if n < 0 {
            self.long()?;
            n.checked_neg()
                .ok_or_else(|| Fail::new(format!("{what} block count overflows")))?
        } else {
            n
        };
        let count = usize::try_from(count).map_err(|_| Fail::new(format!("{what} block count {count}")))?;
        if zero_size {
            self.zero_size_items = self.zero_size_items.saturating_add(count);
            if self.zero_size_items > MAX_ZERO_SIZE_ITEMS {
                return Err(Fail::new(format!(
                    "{what} of more than {MAX_ZERO_SIZE_ITEMS} zero-size items in one datum"
                )));
            }
        } else if count > self.data.len() {
            return Err(Fail::new(format!(
                "{what} block of {count} items but only {} bytes are left",
                self.data.len()
            )));
        }
        Ok(count)
    }

    /// Fails unless the whole input was read.
    pub(crate) fn end(&self) -> R<()> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(Fail::new(format!(
                "{} bytes left after the Avro datum: its writer's schema does not describe it",
                self.data.len()
            )))
        }
    }
}

/// `b` as a `str`, or an error naming `what` it is. Checked with `utf8_chunks`, which inlines:
/// `str::from_utf8` does not, and the caller then reloads its result from memory as one
/// 16-byte word that the processor cannot forward from the two 8-byte stores that wrote it
/// (a stall of a dozen cycles per string, the largest single cost of a serde decode).
#[inline]
pub(crate) fn utf8<'a>(b: &'a [u8], what: &str) -> R<&'a str> {
    let mut chunks = b.utf8_chunks();
    match chunks.next() {
        None => Ok(""),
        Some(c) if c.invalid().is_empty() && c.valid().len() == b.len() => Ok(c.valid()),
        _ => Err(match std::str::from_utf8(b) {
            Err(e) => not_utf8(what, e),
            Ok(_) => Fail::new(format!("{what} is not UTF-8 (an Avro string)")),
        }),
    }
}

#[cold]
pub(crate) fn not_utf8(what: &str, e: std::str::Utf8Error) -> Fail {
    Fail::from(Error::serialization(format!("{what} is not UTF-8 (an Avro string)")).with_source(e))
}

#[cold]
pub(crate) fn too_deep() -> Fail {
    Fail::new(format!("an Avro datum nests over {MAX_DEPTH} levels"))
}

/// Appends a zig-zag varint `long`.
#[inline]
pub(crate) fn write_long(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Appends a length-prefixed byte string.
#[inline]
pub(crate) fn write_bytes(b: &[u8], out: &mut Vec<u8>) {
    write_long(b.len() as i64, out);
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_are_bounded() {
        for v in [
            0i64,
            -1,
            1,
            63,
            -64,
            64,
            1 << 40,
            i64::MAX,
            i64::MIN,
            i64::from(i32::MIN),
        ] {
            let mut out = Vec::new();
            write_long(v, &mut out);
            let mut r = Reader::new(&out);
            assert_eq!(r.long().unwrap(), v);
            assert!(r.end().is_ok());
        }
        assert!(Reader::new(&[0xff; 11]).long().is_err());
        assert!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02])
                .long()
                .is_err()
        );
        assert!(Reader::new(&[0x80]).long().is_err());
        let mut out = Vec::new();
        write_long(i64::from(i32::MAX) + 1, &mut out);
        assert!(Reader::new(&out).int().is_err());
    }

    #[test]
    fn failures_name_the_field_path() {
        let e = Fail::new("bad").in_field("sid").in_field("session").into_error();
        assert_eq!(e.message(), "bad (in field session.sid)");
    }
}
