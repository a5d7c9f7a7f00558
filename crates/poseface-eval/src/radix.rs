//! A parallel least-significant-digit radix sort of `u64` keys of known width, into a buffer
//! the caller provides.
//!
//! Written here rather than taken from a crate because the ROC of an IJB-C evaluation sorts
//! 15.7 M keys of 33 bits: with 11-bit digits that is three passes where a byte-wise sort
//! makes five, and the caller already holds a dead buffer of the same size (the bucketed pair
//! list) to sort through, where radix-sort crates allocate their own (125 MB of fresh pages
//! here).

use rayon::prelude::*;

/// Bits per digit, and buckets per pass.
const DIGIT: u32 = 11;
const BUCKETS: usize = 1 << DIGIT;

/// Sorts `keys`, whose bits above the low `bits` must be zero, in increasing order, using
/// `scratch` (resized to `keys.len()`) as the other buffer. The sorted keys are returned; the
/// other buffer is left in `scratch`.
pub(crate) fn sort(mut keys: Vec<u64>, scratch: &mut Vec<u64>, bits: u32) -> Vec<u64> {
    debug_assert!(
        bits >= 64 || keys.iter().all(|k| k >> bits == 0),
        "keys wider than {bits} bits"
    );
    let n = keys.len();
    scratch.resize(n, 0);
    if n < 2 {
        return keys;
    }
    let chunk = n.div_ceil(rayon::current_num_threads().max(1)).max(1 << 14);
    let mut shift = 0;
    while shift < bits {
        let digit = |k: u64| ((k >> shift) as usize) & (BUCKETS - 1);
        let counts: Vec<Vec<usize>> = keys
            .par_chunks(chunk)
            .map(|c| {
                let mut h = vec![0usize; BUCKETS];
                for &k in c {
                    h[digit(k)] += 1;
                }
                h
            })
            .collect();
        // A pass where every key has the same digit leaves the order as it is.
        let same = (0..BUCKETS).any(|d| counts.iter().map(|h| h[d]).sum::<usize>() == n);
        if !same {
            // Each chunk's keys of digit d go after every key of a smaller digit and after
            // the earlier chunks' keys of digit d: one destination slice per (chunk, digit).
            let mut slots: Vec<Vec<&mut [u64]>> = counts.iter().map(|_| Vec::new()).collect();
            let mut rest: &mut [u64] = scratch.as_mut_slice();
            for d in 0..BUCKETS {
                for (c, h) in counts.iter().enumerate() {
                    let (head, tail) = rest.split_at_mut(h[d]);
                    slots[c].push(head);
                    rest = tail;
                }
            }
            keys.par_chunks(chunk)
                .zip(slots.into_par_iter())
                .for_each(|(c, mut slots)| {
                    let mut fill = vec![0usize; BUCKETS];
                    for &k in c {
                        let d = digit(k);
                        slots[d][fill[d]] = k;
                        fill[d] += 1;
                    }
                });
            std::mem::swap(&mut keys, scratch);
        }
        shift += DIGIT;
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_like_the_standard_sort() {
        let mut s = 7u64;
        let mut next = || {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            s >> 20
        };
        for (n, bits) in [
            (0, 33),
            (1, 33),
            (5, 33),
            (100_000, 33),
            (70_000, 12),
            (3000, 40),
        ] {
            let keys: Vec<u64> = (0..n).map(|_| next() & ((1u64 << bits) - 1)).collect();
            let mut want = keys.clone();
            want.sort_unstable();
            let mut scratch = Vec::new();
            let got = sort(keys, &mut scratch, bits);
            assert_eq!(got, want, "{n} keys of {bits} bits");
            assert_eq!(scratch.len(), n);
        }
        // Many equal keys.
        let keys: Vec<u64> = (0..50_000u64).map(|i| (i * 7919) % 13).collect();
        let mut want = keys.clone();
        want.sort_unstable();
        assert_eq!(sort(keys, &mut Vec::new(), 5), want);
    }

    #[test]
    fn a_pass_with_one_digit_is_skipped_without_losing_the_order() {
        // Every key has the same middle digit: the middle pass must not swap the buffers.
        let keys: Vec<u64> = (0..40_000u64)
            .map(|i| (3 << 22) | (5 << 11) | ((i * 2_654_435_761) % 2048))
            .collect();
        let mut want = keys.clone();
        want.sort();
        assert_eq!(sort(keys, &mut Vec::new(), 33), want);
    }
}
