//! Compression levels (KIP-390): Java's ranges and defaults per codec, and which of them
//! this build's encoders can honour.
//!
//! Java's producer takes `compression.gzip.level`, `compression.lz4.level` and
//! `compression.zstd.level` (`ProducerConfig`, ranges from `CompressionType`). A level is
//! checked twice here: against Java's range (the same rule and message as Java's validator),
//! then against what the encoder compiled into this build does. A level Java accepts but
//! the encoder cannot honour is refused ([`LevelError::NotInThisBuild`]), never accepted
//! and silently compressed at another level.

use crate::compression::Compression;

/// Java's levels for one codec: `CompressionType.minLevel()`, `maxLevel()`, `defaultLevel()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LevelRange {
    /// Lowest level.
    pub min: i32,
    /// Highest level.
    pub max: i32,
    /// The level used when none is set (gzip: -1, `Deflater.DEFAULT_COMPRESSION`).
    pub default: i32,
}

/// gzip: `Deflater.BEST_SPEED` to `BEST_COMPRESSION`, or -1 (`DEFAULT_COMPRESSION`, which
/// zlib and flate2 both take as level 6).
const GZIP: LevelRange = LevelRange {
    min: 1,
    max: 9,
    default: -1,
};
/// lz4: lz4-java's `LZ4Constants` (Java's default 9 uses the fast compressor, any other level
/// the high-compression one: `Lz4BlockOutputStream`).
const LZ4: LevelRange = LevelRange {
    min: 1,
    max: 17,
    default: 9,
};
/// zstd: `ZSTD_minCLevel()` (-131072, `ZSTD_TARGETLENGTH_MAX` negated), `ZSTD_MAX_CLEVEL`,
/// `ZSTD_CLEVEL_DEFAULT`.
const ZSTD: LevelRange = LevelRange {
    min: -131_072,
    max: 22,
    default: 3,
};

impl Compression {
    /// Java's compression levels for this codec (KIP-390); `None` for `none` and `snappy`,
    /// which have none.
    pub const fn java_levels(self) -> Option<LevelRange> {
        match self {
            Compression::Gzip => Some(GZIP),
            Compression::Lz4 => Some(LZ4),
            Compression::Zstd => Some(ZSTD),
            Compression::None | Compression::Snappy => None,
        }
    }

    /// The Java producer property that sets this codec's level (`compression.gzip.level`,
    /// ...); `None` for codecs without levels.
    pub const fn level_property(self) -> Option<&'static str> {
        match self {
            Compression::Gzip => Some("compression.gzip.level"),
            Compression::Lz4 => Some("compression.lz4.level"),
            Compression::Zstd => Some("compression.zstd.level"),
            Compression::None | Compression::Snappy => None,
        }
    }
}

/// Why a level was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LevelError {
    /// The codec has no levels (`none`, `snappy`).
    #[error("{0} has no compression levels")]
    NoLevels(Compression),
    /// Outside Java's range; the message is Java's validator's.
    #[error("{}", out_of_range(*.codec, *.level))]
    OutOfRange {
        /// The codec.
        codec: Compression,
        /// The level asked for.
        level: i32,
    },
    /// Java accepts the level, but the encoder in this build cannot compress at it.
    #[error("{}", not_in_this_build(*.codec, *.level))]
    NotInThisBuild {
        /// The codec.
        codec: Compression,
        /// The level asked for.
        level: i32,
    },
}

/// Java's messages: gzip's own validator (`CompressionType.GZIP.levelValidator`), and
/// `ConfigDef.Range` for lz4 and zstd.
fn out_of_range(codec: Compression, level: i32) -> String {
    match codec.java_levels() {
        Some(r) if codec == Compression::Gzip => format!(
            "Value must be between {} and {} or equal to {}",
            r.min, r.max, r.default
        ),
        Some(r) if level < r.min => format!("Value must be at least {}", r.min),
        Some(r) => format!("Value must be no more than {}", r.max),
        None => format!("{codec} has no compression levels"),
    }
}

fn not_in_this_build(codec: Compression, level: i32) -> String {
    match codec {
        Compression::Zstd => format!(
            "Strom's pure-Rust zstd encoder (ruzstd) compresses at level 1 only, not {level}; build with \
             the `zstd-c` feature (the C zstd library) for every level Java takes (-131072 to 22), \
             or leave the level unset (then zstd is written at level 1)"
        ),
        _ => format!("{codec} level {level} is not available in this build"),
    }
}

/// A level for one codec, within Java's range and honoured by this build's encoder: what
/// [`compress_at`](crate::compression::compress_at) and
/// [`BatchBuilder::with_compression_level`](crate::record_batch::BatchBuilder::with_compression_level)
/// take.
///
/// | codec | Java's range (default) | this build |
/// |---|---|---|
/// | gzip | 1 to 9, or -1 (-1, which is 6) | every level (zlib-rs) |
/// | lz4 | 1 to 17 (9) | every level: 9 is the fast compressor (as in Java), others lz4's high-compression mode |
/// | zstd | -131072 to 22 (3) | 1 only with ruzstd (the default build); every level with the `zstd-c` feature |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompressionLevel {
    codec: Compression,
    level: i32,
}

impl CompressionLevel {
    /// `level` for `codec`, checked as Java checks it, then against this build's encoder.
    pub fn new(codec: Compression, level: i32) -> Result<Self, LevelError> {
        let range = codec.java_levels().ok_or(LevelError::NoLevels(codec))?;
        let in_range = (range.min..=range.max).contains(&level) || level == range.default;
        if !in_range {
            return Err(LevelError::OutOfRange { codec, level });
        }
        if !honoured(codec, level) {
            return Err(LevelError::NotInThisBuild { codec, level });
        }
        Ok(CompressionLevel { codec, level })
    }

    /// The codec.
    pub const fn codec(self) -> Compression {
        self.codec
    }

    /// The level, as Java numbers it.
    pub const fn level(self) -> i32 {
        self.level
    }
}

/// Whether this build's encoder for `codec` compresses at `level` (already within Java's range).
fn honoured(codec: Compression, level: i32) -> bool {
    match codec {
        Compression::Zstd => cfg!(feature = "zstd-c") || level == 1,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_ranges_and_messages() {
        let err = |c, l| CompressionLevel::new(c, l).unwrap_err().to_string();
        for l in [-1, 1, 5, 9] {
            assert_eq!(CompressionLevel::new(Compression::Gzip, l).map(|c| c.level()), Ok(l));
        }
        for l in [0, -2, 10] {
            assert_eq!(
                err(Compression::Gzip, l),
                "Value must be between 1 and 9 or equal to -1"
            );
        }
        assert!(CompressionLevel::new(Compression::Lz4, 1).is_ok());
        assert!(CompressionLevel::new(Compression::Lz4, 17).is_ok());
        assert_eq!(err(Compression::Lz4, 0), "Value must be at least 1");
        assert_eq!(err(Compression::Lz4, 18), "Value must be no more than 17");
        assert_eq!(err(Compression::Zstd, 23), "Value must be no more than 22");
        assert_eq!(err(Compression::Zstd, -131_073), "Value must be at least -131072");
        assert_eq!(err(Compression::Snappy, 1), "snappy has no compression levels");
        assert_eq!(
            CompressionLevel::new(Compression::None, 1),
            Err(LevelError::NoLevels(Compression::None))
        );
        assert!(CompressionLevel::new(Compression::Zstd, 1).is_ok());
    }

    #[test]
    fn zstd_levels_follow_the_build() {
        for l in [-131_072, -5, 3, 19, 22] {
            let r = CompressionLevel::new(Compression::Zstd, l);
            if cfg!(feature = "zstd-c") {
                assert!(r.is_ok(), "{l}");
            } else {
                assert_eq!(
                    r,
                    Err(LevelError::NotInThisBuild {
                        codec: Compression::Zstd,
                        level: l
                    })
                );
                let e = r.unwrap_err().to_string();
                assert!(e.contains("zstd-c") && e.contains("level 1 only"), "{e}");
            }
        }
    }
}
