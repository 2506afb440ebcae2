/// The partition Kafka's default partitioner gives `key` among `partitions`:
/// murmur2 of the key bytes, sign bit cleared, modulo the partition count.
/// The producer is configured with librdkafka's `murmur2_random`, which is
/// the same function for keyed records, so this says where a record with
/// that key is (a test checks it against the broker's placement). Written
/// here because it is twenty lines and no maintained crate exposes Kafka's
/// exact variant (seed, tail handling and the positive mask).
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Kafka mixes in the length as a 32-bit int; keys are far shorter.
    let length = u32::try_from(key.len()).unwrap_or(u32::MAX);
    let mut h = SEED ^ length;
    let mut chunks = key.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    let positive = i64::from(h & 0x7fff_ffff);
    i32::try_from(positive % i64::from(partitions.max(1))).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_over_every_partition_and_always_land_in_range() {
        let mut seen = [false; 6];
        for i in 0..200 {
            let partition = partition_for_key(format!("order-{i}").as_bytes(), 6);
            assert!((0..6).contains(&partition));
            seen[usize::try_from(partition).unwrap_or(0)] = true;
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
        assert_eq!(partition_for_key(b"", 3), partition_for_key(b"", 3));
    }
}
