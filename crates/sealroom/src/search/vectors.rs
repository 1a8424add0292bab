//! Exact vector scoring: dot products of a query against every stored vector of one room.
//!
//! The kernel is plain Rust written so the compiler vectorizes it (sixteen independent lanes,
//! no reordering of one float sum); `pulp::Arch::dispatch` compiles and runs it for the best
//! instruction set the CPU reports at run time (AVX2 on current x86-64), and the same code
//! without dispatch is the portable fallback. Exact search means recall 1.0 and nothing to tune.

/// Lanes of independent partial sums: two AVX2 registers, enough to hide add latency.
const LANES: usize = 16;

/// The dot product, written for auto-vectorization. Inlined into the dispatched context.
#[inline(always)]
fn dot_lanes(left: &[f32], right: &[f32]) -> f32 {
    let length = left.len().min(right.len());
    let (left, right) = (&left[..length], &right[..length]);
    let mut sums = [0.0f32; LANES];
    let mut left_chunks = left.chunks_exact(LANES);
    let mut right_chunks = right.chunks_exact(LANES);
    for (left_chunk, right_chunk) in (&mut left_chunks).zip(&mut right_chunks) {
        for lane in 0..LANES {
            sums[lane] += left_chunk[lane] * right_chunk[lane];
        }
    }
    let mut total: f32 = sums.iter().sum();
    for (left_value, right_value) in left_chunks.remainder().iter().zip(right_chunks.remainder()) {
        total += left_value * right_value;
    }
    total
}

/// The portable fallback: the same kernel, compiled for the baseline instruction set (the
/// baseline tests and benches compare against).
#[cfg(any(test, feature = "test-hooks"))]
pub fn dot_portable(left: &[f32], right: &[f32]) -> f32 {
    dot_lanes(left, right)
}

/// One dot product, on the best instruction set available.
pub fn dot(left: &[f32], right: &[f32]) -> f32 {
    pulp::Arch::new().dispatch(
        #[inline(always)]
        || dot_lanes(left, right),
    )
}

/// Dot products of `query` with the vector `vector_of` finds for each of `slots`, written to
/// `scores` in slot order. One dispatch covers the whole scan; `vector_of` is inlined into it.
pub fn dot_each<'a, S: Copy>(query: &[f32], slots: &[S], vector_of: impl Fn(S) -> &'a [f32], scores: &mut Vec<f32>) {
    scores.clear();
    scores.reserve(slots.len());
    pulp::Arch::new().dispatch(
        #[inline(always)]
        || {
            for &slot in slots {
                scores.push(dot_lanes(query, vector_of(slot)));
            }
        },
    );
}

/// The Euclidean norm.
pub fn norm(vector: &[f32]) -> f32 {
    dot(vector, vector).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(left: &[f32], right: &[f32]) -> f64 {
        left.iter().zip(right).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum()
    }

    proptest! {
        /// Dispatched, portable and naive dot products agree (to float rounding).
        #[test]
        fn kernels_agree(pairs in prop::collection::vec((-10.0f32..10.0, -10.0f32..10.0), 0..700)) {
            let (left, right): (Vec<f32>, Vec<f32>) = pairs.into_iter().unzip();
            let expected = naive(&left, &right);
            let tolerance = 1e-3 * (1.0 + expected.abs());
            prop_assert!((f64::from(dot(&left, &right)) - expected).abs() < tolerance);
            prop_assert!((f64::from(dot_portable(&left, &right)) - expected).abs() < tolerance);
        }
    }

    #[test]
    fn many_matches_one_by_one() {
        let dims = 37;
        let arena: Vec<f32> = (0..dims * 5).map(|index| (index % 11) as f32 - 5.0).collect();
        let query: Vec<f32> = (0..dims).map(|index| index as f32 * 0.1).collect();
        let mut scores = Vec::new();
        dot_each(&query, &[4u32, 0, 2], |slot| &arena[slot as usize * dims..][..dims], &mut scores);
        for (score, slot) in scores.iter().zip([4usize, 0, 2]) {
            assert!((score - dot_portable(&query, &arena[slot * dims..(slot + 1) * dims])).abs() < 1e-3);
        }
    }
}
