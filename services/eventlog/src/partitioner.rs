//! Kafka's default partitioner for keyed records.

/// Kafka's murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`),
/// returned as the Java `int` it computes.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    // Java uses the length as a signed int; the wrap only matters for >2 GiB keys.
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
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
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for a keyed record:
/// `(murmur2(key) & 0x7fffffff) % partitions`.
///
/// Returns 0 when `partitions` is 0 (there is no valid answer; callers
/// validate the count first).
pub fn partition_for(key: &[u8], partitions: u32) -> u32 {
    let positive = (murmur2(key) & 0x7fff_ffff) as u32;
    positive.checked_rem(partitions).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Apache Kafka's `UtilsTest.testMurmur2` vectors (Java signed ints).
    #[test]
    fn murmur2_matches_kafka_utils_test_vectors() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(
                murmur2(input),
                expected,
                "murmur2({:?})",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn murmur2_of_empty_key() {
        assert_eq!(murmur2(b""), 275_646_681);
    }

    #[test]
    fn partition_uses_the_positive_hash() {
        // murmur2("foobar") is negative: the sign bit is masked, not abs()'d.
        assert_eq!(partition_for(b"foobar", 50), 16);
        assert_eq!(
            partition_for(b"foobar", 50),
            ((-790_332_482i32 & 0x7fff_ffff) as u32) % 50
        );
    }

    #[test]
    fn partition_is_stable_and_in_range() {
        for partitions in 1..40u32 {
            for i in 0..200u32 {
                let key = format!("tenant-{i}");
                let p = partition_for(key.as_bytes(), partitions);
                assert!(p < partitions);
                assert_eq!(p, partition_for(key.as_bytes(), partitions));
            }
        }
    }

    #[test]
    fn partition_spreads_keys() {
        let partitions = 8u32;
        let mut counts = [0u32; 8];
        for i in 0..8000u32 {
            counts[partition_for(format!("key-{i}").as_bytes(), partitions) as usize] += 1;
        }
        for (p, &c) in counts.iter().enumerate() {
            assert!(
                (700..=1300).contains(&c),
                "partition {p} got {c} of 8000 keys"
            );
        }
    }

    #[test]
    fn zero_partitions_does_not_panic() {
        assert_eq!(partition_for(b"x", 0), 0);
    }
}
