//! The Java client's murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`), so a keyed
//! record lands on the same partition as with the Java producer's default partitioner.

/// `Utils.murmur2(data)`: 32-bit murmur2 with seed `0x9747b28c`, bytes read little-endian.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    // Java uses an int length; keys are far below 2^31.
    let mut h: u32 = 0x9747_b28c ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// `Utils.toPositive(n)`: clears the sign bit (not `abs`, which fails for `i32::MIN`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Java's default partitioner picks for a non-null key:
/// `toPositive(murmur2(key)) % numPartitions`. `num_partitions` must be positive.
pub fn partition_for_key(key: &[u8], num_partitions: u32) -> u32 {
    (to_positive(murmur2(key)) as u32) % num_partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (key, `Utils.murmur2(key.getBytes(UTF_8))`, `toPositive(h) % 7`), printed by the Java
    /// client (kafka-clients 4.4.0) for these exact keys.
    const JAVA: &[(&str, i32, u32)] = &[
        ("", 275646681, 2),
        ("k", -1567496736, 1),
        ("21", -973932308, 3),
        ("foobar", -790332482, 0),
        ("a-little-bit-long-string", -985981536, 1),
        ("a-little-bit-longer-string", -1486304829, 0),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971, 3),
        ("abc", 479470107, 4),
        ("abcd", -1323649548, 5),
        ("abcde", 461995741, 4),
        ("\u{e9}t\u{e9}", -2101193575, 4),
        ("key-42", -187086521, 3),
    ];

    #[test]
    fn matches_java_utils_murmur2() {
        for &(key, hash, partition) in JAVA {
            assert_eq!(murmur2(key.as_bytes()), hash, "murmur2({key:?})");
            assert_eq!(partition_for_key(key.as_bytes(), 7), partition, "partition({key:?})");
        }
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), i32::MAX);
    }
}
