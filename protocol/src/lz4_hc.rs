//! LZ4 high-compression encoding in safe Rust: what Java's client writes for
//! `compression.lz4.level` other than 9 (`Lz4BlockOutputStream` takes lz4-java's
//! `highCompressor(level)` there, and the fast compressor only at the default 9).
//!
//! lz4_flex (the fast path) has no high-compression mode, so this module has one of its own:
//! the same LZ4 frame Java writes (64 KiB independent blocks, no checksums), each block's
//! matches found along hash chains over the block (the technique of lz4's `lz4hc.c`), with
//! the search depth set by the level, backward extension and lazy matching. Higher levels
//! search deeper, which compresses better on ordinary data. Levels 10 to 17, where lz4
//! switches to its optimal parser, search deeper still here instead: the output is valid
//! LZ4 that any reader decodes, but its bytes differ from lz4-java's.

/// The frame header Java writes: magic, FLG (version 1, independent blocks), BD (64 KiB
/// blocks), and the header checksum byte (`(xxh32(FLG BD) >> 8) & 0xff`).
const FRAME_HEADER: [u8; 7] = [0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82];
const BLOCK: usize = 64 * 1024;
/// Block size field flag: the block is stored uncompressed.
const UNCOMPRESSED: u32 = 0x8000_0000;

const MIN_MATCH: usize = 4;
/// No match starts in the last 12 bytes of a block, and the last 5 are literals (the LZ4
/// block format's end-of-block rules).
const MF_LIMIT: usize = 12;
const LAST_LITERALS: usize = 5;
const MAX_DISTANCE: usize = 65_535;
const HASH_LOG: u32 = 15;

/// Candidates examined per position at `level` (1 to 17, not 9).
fn attempts(level: i32) -> usize {
    // 2^level: 2 to 256 for 1 to 8, 1024 to 8192 for 10 to 13, then 8192 (lz4 itself stops
    // raising its effort at level 12).
    let shift = level.clamp(1, 13) as u32;
    1usize << shift
}

/// Compresses `input` as an LZ4 frame at `level`, appending to `out`.
pub(crate) fn compress(input: &[u8], level: i32, out: &mut Vec<u8>) {
    out.extend_from_slice(&FRAME_HEADER);
    let mut finder = Finder::new(attempts(level));
    let mut block_out = Vec::new();
    for block in input.chunks(BLOCK) {
        block_out.clear();
        finder.compress_block(block, &mut block_out);
        if block_out.len() < block.len() {
            out.extend_from_slice(&(block_out.len() as u32).to_le_bytes());
            out.extend_from_slice(&block_out);
        } else {
            out.extend_from_slice(&(block.len() as u32 | UNCOMPRESSED).to_le_bytes());
            out.extend_from_slice(block);
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes()); // end mark
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn hash(seq: u32) -> usize {
    (seq.wrapping_mul(2_654_435_761) >> (32 - HASH_LOG)) as usize
}

/// Length of the common run of `b[x..]` and `b[y..]`, not reaching past `end`; `x < y`.
fn common(b: &[u8], mut x: usize, mut y: usize, end: usize) -> usize {
    let start = y;
    while y + 8 <= end {
        let mut p = [0u8; 8];
        let mut q = [0u8; 8];
        p.copy_from_slice(&b[x..x + 8]);
        q.copy_from_slice(&b[y..y + 8]);
        let diff = u64::from_le_bytes(p) ^ u64::from_le_bytes(q);
        if diff != 0 {
            return y - start + (diff.trailing_zeros() / 8) as usize;
        }
        x += 8;
        y += 8;
    }
    while y < end && b[x] == b[y] {
        x += 1;
        y += 1;
    }
    y - start
}

#[derive(Debug, Clone, Copy)]
struct Match {
    /// Where the match starts in the block.
    start: usize,
    len: usize,
    offset: usize,
}

/// Hash chains over one block: `head` holds the latest position of each hash, `chain` the
/// distance from a position back to the previous one with its hash (0: none).
struct Finder {
    head: Vec<i32>,
    chain: Vec<u16>,
    next_insert: usize,
    attempts: usize,
}

impl Finder {
    fn new(attempts: usize) -> Self {
        Finder {
            head: vec![-1; 1 << HASH_LOG],
            chain: vec![0; BLOCK],
            next_insert: 0,
            attempts,
        }
    }

    /// Adds every position before `pos` to the chains.
    fn insert_until(&mut self, b: &[u8], pos: usize) {
        while self.next_insert < pos {
            let p = self.next_insert;
            let h = hash(read_u32(b, p));
            let prev = self.head[h];
            let delta = if prev >= 0 { p - prev as usize } else { 0 };
            self.chain[p] = if delta <= MAX_DISTANCE { delta as u16 } else { 0 };
            self.head[h] = p as i32;
            self.next_insert += 1;
        }
    }

    /// The longest match for the bytes at `ip`, extended backwards down to `anchor`.
    fn best(&mut self, b: &[u8], ip: usize, anchor: usize, match_end: usize) -> Option<Match> {
        self.insert_until(b, ip);
        let seq = read_u32(b, ip);
        let mut cand = self.head[hash(seq)];
        let mut best: Option<Match> = None;
        let mut best_len = MIN_MATCH - 1;
        let mut left = self.attempts;
        while cand >= 0 && left > 0 {
            let c = cand as usize;
            if ip - c > MAX_DISTANCE {
                break;
            }
            left -= 1;
            // Cheap test first: a longer match must agree at the byte that would extend it.
            if ip + best_len < match_end && b[c + best_len] == b[ip + best_len] && read_u32(b, c) == seq {
                let len = MIN_MATCH + common(b, c + MIN_MATCH, ip + MIN_MATCH, match_end);
                // Backward extension into bytes that would otherwise be literals.
                let mut back = 0;
                while ip - back > anchor && c > back && b[c - back - 1] == b[ip - back - 1] {
                    back += 1;
                }
                if len + back > best_len {
                    best_len = len + back;
                    best = Some(Match {
                        start: ip - back,
                        len: len + back,
                        offset: ip - c,
                    });
                    if ip + len >= match_end {
                        break;
                    }
                }
            }
            let delta = self.chain[c] as usize;
            if delta == 0 {
                break;
            }
            cand = (c - delta) as i32;
        }
        best
    }

    fn compress_block(&mut self, b: &[u8], out: &mut Vec<u8>) {
        self.head.fill(-1);
        self.next_insert = 0;
        let mut anchor = 0;
        if b.len() > MF_LIMIT {
            let last_start = b.len() - MF_LIMIT;
            let match_end = b.len() - LAST_LITERALS;
            let mut ip = 1;
            while ip < last_start {
                let Some(mut m) = self.best(b, ip, anchor, match_end) else {
                    ip += 1;
                    continue;
                };
                // Lazy matching: a longer match one byte on wins over this one.
                while m.start + m.len < last_start && ip + 1 < last_start {
                    match self.best(b, ip + 1, anchor, match_end) {
                        Some(next) if next.start + next.len > m.start + m.len && next.len > m.len => {
                            ip += 1;
                            m = next;
                        }
                        _ => break,
                    }
                }
                put_sequence(out, &b[anchor..m.start], Some((m.offset, m.len)));
                ip = m.start + m.len;
                anchor = ip;
            }
        }
        put_sequence(out, &b[anchor..], None);
    }
}

/// Appends a length continuation (the part beyond the token's 15).
fn put_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 255 {
        out.push(255);
        n -= 255;
    }
    out.push(n as u8);
}

/// One LZ4 sequence: literals, then a match (absent in the last sequence of a block).
fn put_sequence(out: &mut Vec<u8>, literals: &[u8], matched: Option<(usize, usize)>) {
    let lit = literals.len();
    let ml = matched.map_or(0, |(_, len)| len - MIN_MATCH);
    out.push(((lit.min(15) as u8) << 4) | ml.min(15) as u8);
    if lit >= 15 {
        put_len(out, lit - 15);
    }
    out.extend_from_slice(literals);
    if let Some((offset, _)) = matched {
        out.extend_from_slice(&(offset as u16).to_le_bytes());
        if ml >= 15 {
            put_len(out, ml - 15);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn read(frame: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        lz4_flex::frame::FrameDecoder::new(frame).read_to_end(&mut out).unwrap();
        out
    }

    fn text(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                format!(
                    "{{\"id\":{i},\"user\":\"user-{}\",\"kind\":\"{}\"}} ",
                    i % 89,
                    ["a", "bb", "ccc"][i % 3]
                )
                .into_bytes()
            })
            .collect()
    }

    #[test]
    fn header_is_the_one_java_and_lz4_flex_write() {
        let info = lz4_flex::frame::FrameInfo::new()
            .block_size(lz4_flex::frame::BlockSize::Max64KB)
            .block_mode(lz4_flex::frame::BlockMode::Independent);
        let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        enc.write_all(b"x").unwrap();
        let flex = enc.finish().unwrap();
        assert_eq!(&flex[..7], &FRAME_HEADER);
    }

    #[test]
    fn round_trips_at_every_level_and_deeper_search_is_smaller() {
        let input = text(20_000); // several 64 KiB blocks
        let mut sizes = Vec::new();
        for level in [1, 2, 4, 8, 10, 12, 17] {
            let mut out = Vec::new();
            compress(&input, level, &mut out);
            assert_eq!(read(&out), input, "level {level}");
            sizes.push(out.len());
        }
        // Deeper searches compress this text better (greedy parsing does not promise it
        // for every input, so only the ends are compared strictly).
        assert!(sizes.iter().all(|&s| s <= sizes[0]), "{sizes:?}");
        assert!(sizes[sizes.len() - 1] < sizes[0], "{sizes:?}");
    }

    #[test]
    fn edge_inputs() {
        let mut cases: Vec<Vec<u8>> = vec![vec![], b"a".to_vec(), vec![7; 12], vec![7; 13], vec![0; 200_000]];
        cases.push(
            (0..70_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        );
        cases.push(text(3_000).into_iter().chain(std::iter::repeat_n(9, 70_000)).collect());
        for input in cases {
            for level in [1, 6, 17] {
                let mut out = Vec::new();
                compress(&input, level, &mut out);
                assert_eq!(read(&out), input, "len {} level {level}", input.len());
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn round_trip_any(data in proptest::collection::vec(0u8..4, 0..3000), level in 1i32..18) {
            let mut out = Vec::new();
            compress(&data, level, &mut out);
            proptest::prop_assert_eq!(read(&out), data);
        }
    }
}
