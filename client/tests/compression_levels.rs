//! `compression.gzip.level`, `compression.lz4.level`, `compression.zstd.level` (KIP-390):
//! Java's names, ranges, defaults and messages; a level this build cannot honour is a
//! config error naming the key, the value and what is supported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use strom_client::{Compression, CompressionLevel, ProducerConfig};

fn refused(key: &str, value: &str) -> String {
    let e = ProducerConfig::default().set(key, value).unwrap_err();
    assert!(e.is_config(), "{key}={value}: {e}");
    e.to_string()
}

#[test]
fn java_ranges_and_messages() {
    let mut c = ProducerConfig::default();
    assert_eq!(
        (
            c.compression_gzip_level,
            c.compression_lz4_level,
            c.compression_zstd_level
        ),
        (None, None, None)
    );
    for v in ["-1", "1", "9"] {
        c.set("compression.gzip.level", v).unwrap();
        assert_eq!(c.compression_gzip_level, Some(v.parse().unwrap()));
    }
    for v in ["1", "9", "17"] {
        c.set("compression.lz4.level", v).unwrap();
    }
    c.set("compression.zstd.level", "1").unwrap();
    assert!(refused("compression.gzip.level", "0").ends_with(
        "Invalid value 0 for configuration compression.gzip.level: Value must be between 1 and 9 or equal to -1"
    ));
    assert!(refused("compression.gzip.level", "10").contains("between 1 and 9 or equal to -1"));
    assert!(refused("compression.lz4.level", "18")
        .ends_with("Invalid value 18 for configuration compression.lz4.level: Value must be no more than 17"));
    assert!(refused("compression.lz4.level", "0").ends_with("Value must be at least 1"));
    assert!(refused("compression.zstd.level", "23").ends_with("Value must be no more than 22"));
    assert!(refused("compression.zstd.level", "-131073").ends_with("Value must be at least -131072"));
    assert!(refused("compression.zstd.level", "high")
        .ends_with("Invalid value high for configuration compression.zstd.level: Not a number of type INT"));
}

/// Without the C library only level 1 is honoured (ruzstd); with `zstd-c` every Java level.
#[test]
fn zstd_levels_follow_the_build() {
    let c_zstd = CompressionLevel::new(Compression::Zstd, 19).is_ok();
    for v in ["-131072", "-3", "3", "19", "22"] {
        let r = ProducerConfig::default().set("compression.zstd.level", v);
        if c_zstd {
            r.unwrap();
        } else {
            let e = r.unwrap_err().to_string();
            assert!(
                e.contains(&format!("Invalid value {v} for configuration compression.zstd.level: "))
                    && e.contains("level 1 only")
                    && e.contains("zstd-c"),
                "{e}"
            );
        }
    }
}

/// The level of the codec in use is the one batches take; the others are kept and unused,
/// as in Java. Fields set directly are checked by validate, as a property would be.
#[test]
fn the_codec_in_use_picks_its_level() {
    let c = ProducerConfig::from_properties([
        ("compression.type", "gzip"),
        ("compression.gzip.level", "9"),
        ("compression.lz4.level", "4"),
    ])
    .unwrap();
    let level = c.compression_level().unwrap().unwrap();
    assert_eq!((level.codec(), level.level()), (Compression::Gzip, 9));
    let mut c = c;
    c.compression = Compression::Lz4;
    assert_eq!(c.compression_level().unwrap().map(|l| l.level()), Some(4));
    c.compression = Compression::Snappy;
    assert_eq!(c.compression_level().unwrap(), None);
    c.compression = Compression::Zstd;
    assert_eq!(c.compression_level().unwrap(), None, "unset: the codec's default");

    let mut c = ProducerConfig::default();
    c.compression_lz4_level = Some(40);
    let e = c.validate().unwrap_err();
    assert!(e.is_config() && e.to_string().contains("compression.lz4.level"), "{e}");
    let e = ProducerConfig::builder("h:9092")
        .set("compression.gzip.level", "12")
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("Invalid value 12"), "{e}");
}
