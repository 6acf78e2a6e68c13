//! The machine's memory bandwidth, the roof a decode step bound by memory runs into: STREAM's
//! triad (McCalpin), `a[i] = b[i] + q·c[i]` over three arrays of f64, split across threads.
//! Like STREAM, a pass counts `3 · 8` bytes per element (two reads, one write; the
//! write-allocate read is not counted), and the best pass is the bandwidth.
//!
//! No maintained crate does this; it is a loop the compiler vectorises.

use std::time::Instant;

use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};

use crate::options::InvalidOption;

/// One triad measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bandwidth {
    /// The best pass, GB/s (10^9 bytes).
    pub best_gb_per_s: f64,
    /// The median pass, GB/s.
    pub median_gb_per_s: f64,
    /// Bytes of the three arrays together.
    pub bytes: usize,
    pub threads: usize,
    pub passes: usize,
}

/// The bytes of `mib` MiB, if the three arrays fit in `available` bytes of free memory (`None`:
/// unknown, so not checked): a size past it would abort the allocation, and one past `usize`
/// would wrap to another size.
pub fn triad_bytes(mib: usize, available: Option<u64>) -> Result<usize, InvalidOption> {
    let most = available.map(|free| free >> 20);
    let accepted = || match most {
        Some(most) => format!("at most {most} MiB, the memory this machine has free"),
        None => format!("at most {} MiB", usize::MAX >> 20),
    };
    let bytes = mib
        .checked_mul(1 << 20)
        .ok_or_else(|| InvalidOption::new("mib", mib, accepted()))?;
    if most.is_some_and(|most| mib as u64 > most) {
        return Err(InvalidOption::new("mib", mib, accepted()));
    }
    Ok(bytes)
}

/// Runs `passes` timed triads (after one untimed) over three arrays of `bytes / 3` each.
pub fn triad(bytes: usize, threads: usize, passes: usize) -> Result<Bandwidth> {
    ensure!(threads >= 1, "triad: at least one thread");
    ensure!(passes >= 1, "triad: at least one timed pass");
    let n = bytes / 3 / size_of::<f64>();
    ensure!(
        n >= threads * 1024,
        "triad: {bytes} bytes is too small to measure memory (at least {} for {threads} threads)",
        3 * size_of::<f64>() * threads * 1024
    );
    let chunk = n.div_ceil(threads);
    let (mut a, mut b, mut c) = (vec![0.0f64; n], vec![0.0f64; n], vec![0.0f64; n]);
    // Each thread writes its own chunks first, so they are its pages (first touch).
    in_chunks(chunk, [&mut a, &mut b, &mut c], |[a, b, c]| {
        a.fill(1.0);
        b.fill(2.0);
        c.fill(0.5);
    });
    let q = 3.0;
    let mut seconds = Vec::with_capacity(passes);
    for pass in 0..=passes {
        let t = Instant::now();
        in_chunks(chunk, [&mut a, &mut b, &mut c], |[a, b, c]| {
            for ((a, b), c) in a.iter_mut().zip(&*b).zip(&*c) {
                *a = b + q * c;
            }
        });
        if pass > 0 {
            seconds.push(t.elapsed().as_secs_f64());
        }
    }
    // Every element is 2 + 3·0.5 = 3.5: the loop ran and was not optimised away.
    ensure!(
        a.iter().step_by(4099).all(|&x| x == 3.5),
        "triad: wrong result"
    );
    seconds.sort_by(f64::total_cmp);
    let moved = (3 * n * size_of::<f64>()) as f64;
    Ok(Bandwidth {
        best_gb_per_s: moved / seconds[0] / 1e9,
        median_gb_per_s: moved / seconds[seconds.len() / 2] / 1e9,
        bytes: 3 * n * size_of::<f64>(),
        threads,
        passes,
    })
}

/// Runs `f` on the `i`-th chunk of every array, one thread per chunk index.
fn in_chunks(chunk: usize, arrays: [&mut [f64]; 3], f: impl Fn([&mut [f64]; 3]) + Sync) {
    let [a, b, c] = arrays;
    std::thread::scope(|s| {
        for ((a, b), c) in a
            .chunks_mut(chunk)
            .zip(b.chunks_mut(chunk))
            .zip(c.chunks_mut(chunk))
        {
            let f = &f;
            s.spawn(move || f([a, b, c]));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triad_checks_its_result_and_refuses_what_it_cannot_measure() {
        let bw = triad(3 << 20, 2, 2).unwrap();
        assert!(bw.best_gb_per_s >= bw.median_gb_per_s && bw.median_gb_per_s > 0.0);
        assert_eq!(bw.bytes, 3 << 20);
        assert!(triad(1000, 2, 1).is_err());
        assert!(triad(3 << 20, 0, 1).is_err());
        assert!(triad(3 << 20, 1, 0).is_err());
    }

    #[test]
    fn a_size_past_free_memory_or_usize_is_refused_not_wrapped() {
        let gib = 1u64 << 30;
        assert_eq!(triad_bytes(1536, Some(24 * gib)).unwrap(), 1536 << 20);
        assert_eq!(triad_bytes(24 << 10, Some(24 * gib)).unwrap(), 24 << 30);
        let past = triad_bytes((24 << 10) + 1, Some(24 * gib)).unwrap_err();
        assert_eq!((past.option, past.value.as_str()), ("mib", "24577"));
        assert!(past.accepted.contains("at most 24576 MiB"), "{past}");
        // 2^44 + 64 MiB wraps to 64 MiB when shifted; it is refused, known memory or not.
        for free in [Some(24 * gib), None] {
            let wraps = triad_bytes(17_592_186_044_480, free).unwrap_err();
            assert_eq!(wraps.value, "17592186044480");
        }
    }
}
