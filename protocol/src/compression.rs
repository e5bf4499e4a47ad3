//! Record batch compression codecs, written and read as the Java client does; pure Rust
//! unless the `zstd-c` feature asks for the C zstd library.
//!
//! * gzip: a gzip member (`GZIPOutputStream`), zlib-rs through flate2; concatenated members
//!   are read.
//! * snappy: xerial framing (`SnappyOutputStream`: 16-byte header, then `[len: i32 BE][raw
//!   snappy block]` per 32 KiB of input); raw snappy without the header is also accepted on
//!   read, as xerial's `SnappyInputStream` does.
//! * lz4: the LZ4 frame format with 64 KiB independent blocks, no checksums: lz4_flex's
//!   fast compressor at the default level (as Java's `Lz4BlockOutputStream` at level 9),
//!   Strom's own high-compression encoder (`lz4_hc.rs`) at the other levels.
//! * zstd: a zstd frame; `ruzstd` by default (its "fastest" level, about zstd's level 1;
//!   Java's default is level 3), the C library with the `zstd-c` feature (Java's default
//!   level 3 and every other level).
//!
//! Levels (KIP-390) are [`CompressionLevel`]s: checked against Java's ranges and against
//! what the encoder in this build can do, so a level is never accepted and then ignored.
//!
//! Every decompressor stops at a caller-given output limit, so a small hostile batch cannot
//! allocate more than that.

use std::io::{Read, Write};

use bytes::Bytes;

pub use crate::compression_level::{CompressionLevel, LevelError, LevelRange};
use crate::error::WireError;

/// A record batch compression codec (attributes bits 0–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compression {
    /// No compression (0).
    #[default]
    None,
    /// gzip (1).
    Gzip,
    /// snappy with xerial framing (2).
    Snappy,
    /// LZ4 frame (3).
    Lz4,
    /// zstd (4).
    Zstd,
}

impl Compression {
    /// Every codec, `None` first.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec for the attribute bits, or an error naming the unknown id.
    pub fn from_id(id: u8) -> Result<Self, WireError> {
        Ok(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(WireError::UnknownCompression(other)),
        })
    }

    /// The id stored in the attribute bits.
    pub const fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The name used by `compression.type`.
    pub const fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Parses a `compression.type` value.
    pub fn from_name(name: &str) -> Option<Self> {
        Compression::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// xerial snappy stream header: magic, version 1, compatible version 1.
const XERIAL_HEADER: [u8; 16] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1];
/// Input bytes per xerial block (`SnappyOutputStream` default block size).
const XERIAL_BLOCK: usize = 32 * 1024;

/// Compresses `input` with `codec` at its default level, appending to `out`.
/// `Compression::None` copies.
pub fn compress(codec: Compression, input: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
    compress_inner(codec, None, input, out)
}

/// Compresses `input` with the level's codec at that level (KIP-390), appending to `out`.
pub fn compress_at(level: CompressionLevel, input: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
    compress_inner(level.codec(), Some(level.level()), input, out)
}

/// Java's lz4 level for the fast compressor (`Lz4BlockOutputStream`: the default, 9, takes
/// `fastCompressor()`, every other level `highCompressor(level)`).
const LZ4_FAST_LEVEL: i32 = 9;

/// `level` is `None` or one a [`CompressionLevel`] let through for `codec`.
fn compress_inner(codec: Compression, level: Option<i32>, input: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
    let failed = |_| WireError::CompressFailed(codec);
    match codec {
        Compression::None => out.extend_from_slice(input),
        Compression::Gzip => {
            // Java's -1 (Deflater.DEFAULT_COMPRESSION) is zlib's default, 6.
            let level = match level {
                Some(l @ 1..=9) => flate2::Compression::new(l.unsigned_abs()),
                _ => flate2::Compression::default(),
            };
            let mut enc = flate2::write::GzEncoder::new(out, level);
            enc.write_all(input).map_err(failed)?;
            enc.finish().map_err(failed)?;
        }
        Compression::Snappy => snappy_compress(input, out)?,
        Compression::Lz4 => match level {
            Some(l) if l != LZ4_FAST_LEVEL => crate::lz4_hc::compress(input, l, out),
            _ => {
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max64KB)
                    .block_mode(lz4_flex::frame::BlockMode::Independent);
                let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
                enc.write_all(input).map_err(failed)?;
                enc.finish().map_err(|_| WireError::CompressFailed(codec))?;
            }
        },
        Compression::Zstd => zstd_compress(input, level, out)?,
    }
    Ok(())
}

/// ruzstd implements "Fastest" (roughly zstd level 1), the one level
/// [`CompressionLevel`] lets through without `zstd-c`. Blocks are at most 128 KiB, so its
/// literal-section limit is never reached.
#[cfg(not(feature = "zstd-c"))]
fn zstd_compress(input: &[u8], _level: Option<i32>, out: &mut Vec<u8>) -> Result<(), WireError> {
    ruzstd::encoding::compress(input, out, ruzstd::encoding::CompressionLevel::Fastest);
    Ok(())
}

/// The C library, at Java's default level 3 unless told otherwise.
#[cfg(feature = "zstd-c")]
fn zstd_compress(input: &[u8], level: Option<i32>, out: &mut Vec<u8>) -> Result<(), WireError> {
    let failed = |_| WireError::CompressFailed(Compression::Zstd);
    let level = level.unwrap_or(Compression::Zstd.java_levels().map_or(3, |r| r.default));
    let mut enc = zstd::stream::write::Encoder::new(out, level).map_err(failed)?;
    enc.write_all(input).map_err(failed)?;
    enc.finish().map_err(failed)?;
    Ok(())
}

/// A snappy encoder and a block's worth of output room, kept per thread: the encoder keeps
/// its hash table allocated, and the output room stays at full length, so it is zeroed once
/// instead of for every block (`snap` writes into an initialised slice).
struct SnappyScratch {
    encoder: snap::raw::Encoder,
    block: Vec<u8>,
}

impl SnappyScratch {
    fn new() -> Self {
        SnappyScratch {
            encoder: snap::raw::Encoder::new(),
            block: vec![0; snap::raw::max_compress_len(XERIAL_BLOCK)],
        }
    }
}

thread_local! {
    static SNAPPY: std::cell::RefCell<Option<SnappyScratch>> = const { std::cell::RefCell::new(None) };
}

fn snappy_compress(input: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
    SNAPPY.with(|cell| match cell.try_borrow_mut() {
        Ok(mut kept) => snappy_blocks(kept.get_or_insert_with(SnappyScratch::new), input, out),
        // Not reached (nothing here re-enters), but never a panic: a scratch of its own.
        Err(_) => snappy_blocks(&mut SnappyScratch::new(), input, out),
    })
}

fn snappy_blocks(scratch: &mut SnappyScratch, input: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
    let failed = |_| WireError::CompressFailed(Compression::Snappy);
    let blocks = input.len().div_ceil(XERIAL_BLOCK);
    out.reserve(XERIAL_HEADER.len() + blocks * 4 + input.len() / 2);
    out.extend_from_slice(&XERIAL_HEADER);
    for chunk in input.chunks(XERIAL_BLOCK) {
        let n = scratch.encoder.compress(chunk, &mut scratch.block).map_err(failed)?;
        let len = i32::try_from(n).map_err(|_| WireError::TooLarge("snappy block"))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&scratch.block[..n]);
    }
    Ok(())
}

/// Decompresses `input`, refusing to produce more than `limit` bytes.
///
/// The output is never pre-sized from a length found in the input.
pub fn decompress(codec: Compression, input: &[u8], limit: usize) -> Result<Bytes, WireError> {
    let out = match codec {
        Compression::None => {
            if input.len() > limit {
                return Err(WireError::DecompressionLimit { codec, limit });
            }
            input.to_vec()
        }
        Compression::Gzip => read_capped(flate2::read::MultiGzDecoder::new(input), codec, limit)?,
        Compression::Snappy => snappy_decompress(input, limit)?,
        Compression::Lz4 => read_capped(lz4_flex::frame::FrameDecoder::new(input), codec, limit)?,
        Compression::Zstd => zstd_decompress(input, limit)?,
    };
    Ok(Bytes::from(out))
}

#[cfg(not(feature = "zstd-c"))]
fn zstd_decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, WireError> {
    let codec = Compression::Zstd;
    let mut src = input;
    let dec = ruzstd::decoding::StreamingDecoder::new(&mut src).map_err(|_| WireError::CorruptCompressed(codec))?;
    read_capped(dec, codec, limit)
}

/// The C library's streaming decoder, capped like the others. Its window limit stays the
/// library's default (2^27 bytes), the one Java's consumer (zstd-jni) reads with: a frame
/// Java can read is read here too.
#[cfg(feature = "zstd-c")]
fn zstd_decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, WireError> {
    let codec = Compression::Zstd;
    let dec = zstd::stream::read::Decoder::with_buffer(input).map_err(|_| WireError::CorruptCompressed(codec))?;
    read_capped(dec, codec, limit)
}

/// Reads a decoder to its end, failing once more than `limit` bytes come out.
fn read_capped<R: Read>(reader: R, codec: Compression, limit: usize) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|_| WireError::CorruptCompressed(codec))?;
    if out.len() > limit {
        return Err(WireError::DecompressionLimit { codec, limit });
    }
    Ok(out)
}

fn snappy_decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    // xerial: the magic, then version and compatible version (not checked, as xerial).
    let Some(mut blocks) = input.strip_prefix(&XERIAL_HEADER[..8]) else {
        // Raw snappy, as xerial's SnappyInputStream falls back to.
        snappy_raw(input, limit, &mut out)?;
        return Ok(out);
    };
    blocks = blocks.get(8..).ok_or(WireError::Truncated("snappy stream header"))?;
    while !blocks.is_empty() {
        let (len, rest) = blocks
            .split_first_chunk::<4>()
            .ok_or(WireError::Truncated("snappy block length"))?;
        let len = i32::from_be_bytes(*len);
        let len = usize::try_from(len).map_err(|_| WireError::InvalidLength {
            what: "snappy block",
            len: len.into(),
        })?;
        if len > rest.len() {
            return Err(WireError::Truncated("snappy block"));
        }
        let (block, rest) = rest.split_at(len);
        snappy_raw(block, limit, &mut out)?;
        blocks = rest;
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, within `limit` total bytes.
fn snappy_raw(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), WireError> {
    let codec = Compression::Snappy;
    let n = snap::raw::decompress_len(block).map_err(|_| WireError::CorruptCompressed(codec))?;
    if out.len().saturating_add(n) > limit {
        return Err(WireError::DecompressionLimit { codec, limit });
    }
    let start = out.len();
    out.resize(start + n, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|_| WireError::CorruptCompressed(codec))?;
    out.truncate(start + written);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect()
    }

    #[test]
    fn every_codec_round_trips_and_shrinks_repetitive_data() {
        let input = sample();
        for codec in Compression::ALL {
            let mut out = Vec::new();
            compress(codec, &input, &mut out).unwrap();
            if codec != Compression::None {
                assert!(out.len() < input.len() / 2, "{codec} did not compress");
            }
            let back = decompress(codec, &out, input.len()).unwrap();
            assert_eq!(&back[..], &input[..], "{codec}");
        }
    }

    /// Round trips at several levels of each codec, and the level reaches the encoder: a
    /// level ignored (compressed at the default) fails the size comparisons.
    #[test]
    fn levels_round_trip_and_change_the_output() {
        let input: Vec<u8> = (0..6000u32)
            .flat_map(|i| format!("{{\"id\":{i},\"user\":\"u{}\",\"n\":{}}}", i % 71, i * 7 % 1000).into_bytes())
            .collect();
        let at = |codec, level| {
            let mut out = Vec::new();
            match level {
                Some(l) => compress_at(CompressionLevel::new(codec, l).unwrap(), &input, &mut out).unwrap(),
                None => compress(codec, &input, &mut out).unwrap(),
            }
            assert_eq!(
                &decompress(codec, &out, input.len()).unwrap()[..],
                &input[..],
                "{codec} {level:?}"
            );
            out.len()
        };
        // gzip: -1 is the default (6); 1 is larger, 9 no larger than 6.
        assert_eq!(at(Compression::Gzip, Some(-1)), at(Compression::Gzip, None));
        assert!(at(Compression::Gzip, Some(1)) > at(Compression::Gzip, None));
        assert!(at(Compression::Gzip, Some(9)) <= at(Compression::Gzip, None));
        // lz4: 9 is the fast compressor (the default, byte for byte); the others are
        // high-compression and smaller.
        let mut fast = Vec::new();
        compress(Compression::Lz4, &input, &mut fast).unwrap();
        let mut nine = Vec::new();
        compress_at(CompressionLevel::new(Compression::Lz4, 9).unwrap(), &input, &mut nine).unwrap();
        assert_eq!(fast, nine);
        for l in [1, 4, 12, 17] {
            assert!(at(Compression::Lz4, Some(l)) < fast.len(), "lz4 level {l}");
        }
        // zstd: 1 always; with the C library every level, and 19 beats 1.
        let one = at(Compression::Zstd, Some(1));
        if cfg!(feature = "zstd-c") {
            assert!(at(Compression::Zstd, Some(19)) < one);
            assert!(at(Compression::Zstd, Some(-5)) > one);
            at(Compression::Zstd, None);
        } else {
            assert_eq!(one, at(Compression::Zstd, None), "ruzstd: level 1 is its default");
        }
    }

    #[test]
    fn decompression_is_capped() {
        // A bomb: 64 MiB of zeros compresses to a few KiB with every codec.
        let input = vec![0u8; 64 << 20];
        for codec in Compression::ALL {
            if codec == Compression::None {
                continue;
            }
            let mut out = Vec::new();
            compress(codec, &input, &mut out).unwrap();
            assert!(out.len() < 4 << 20, "{codec}: {}", out.len());
            assert_eq!(
                decompress(codec, &out, 1 << 20),
                Err(WireError::DecompressionLimit { codec, limit: 1 << 20 }),
                "{codec}"
            );
        }
    }

    #[test]
    fn xerial_header_as_java_writes_it() {
        let mut out = Vec::new();
        compress(Compression::Snappy, b"hello hello hello", &mut out).unwrap();
        assert_eq!(&out[..16], &XERIAL_HEADER);
        let len = i32::from_be_bytes(out[16..20].try_into().unwrap()) as usize;
        assert_eq!(out.len(), 20 + len);
        // Raw snappy (no xerial header) is read too.
        let raw = snap::raw::Encoder::new().compress_vec(b"raw block").unwrap();
        assert_eq!(&decompress(Compression::Snappy, &raw, 100).unwrap()[..], b"raw block");
    }

    #[test]
    fn lz4_frame_header_matches_java() {
        let mut out = Vec::new();
        compress(Compression::Lz4, b"abc", &mut out).unwrap();
        // Magic, FLG = version 01 + block independence, BD = 64 KiB max block.
        assert_eq!(&out[..6], &[0x04, 0x22, 0x4d, 0x18, 0x60, 0x40]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in Compression::ALL {
            for junk in [
                &b""[..],
                b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\xff\xff\xff\xff",
                b"\x04\x22\x4d\x18\x60\x40\x82",
                b"\x1f\x8b\x08\x00garbage",
                b"\x28\xb5\x2f\xfd\x00",
            ] {
                let _ = decompress(codec, junk, 1 << 16);
            }
        }
        assert_eq!(Compression::from_id(7), Err(WireError::UnknownCompression(7)));
    }

    proptest! {
        #[test]
        fn round_trip_any(data in proptest::collection::vec(any::<u8>(), 0..5000)) {
            for codec in Compression::ALL {
                let mut out = Vec::new();
                compress(codec, &data, &mut out)?;
                let back = decompress(codec, &out, data.len())?;
                prop_assert_eq!(&back[..], &data[..]);
            }
        }

        #[test]
        fn decompress_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            for codec in Compression::ALL {
                let _ = decompress(codec, &data, 1 << 16);
            }
        }
    }
}
