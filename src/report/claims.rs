//! The paper's claims as data, each with the criterion it is judged by, and the findings: what
//! the runs measured for each claim and the verdict.

use super::runs::{RunData, baseline, common_context};
use crate::info::percent;
use crate::model::LatentLayout;

/// What a measured value must satisfy for a claim to count as reproduced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Criterion {
    /// `lo <= value <= hi`.
    Within(f64, f64),
    AtMost(f64),
    AtLeast(f64),
    /// The best run by the measure is of the claimed kind.
    Best,
}

impl Criterion {
    pub fn holds(self, value: f64) -> bool {
        match self {
            Criterion::Within(lo, hi) => (lo..=hi).contains(&value),
            Criterion::AtMost(hi) => value <= hi,
            Criterion::AtLeast(lo) => value >= lo,
            Criterion::Best => value > 0.0,
        }
    }
}

/// A claim of the paper.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claim {
    /// The claim, in the paper's figures.
    pub statement: &'static str,
    /// The criterion in words, as the report shows it.
    pub shown: &'static str,
    pub criterion: Criterion,
}

impl Claim {
    /// The claim with its criterion, for the report's table.
    pub fn text(&self) -> String {
        format!("{} ({})", self.statement, self.shown)
    }
}

/// KV cache cut by MLA+RoPE at r = d/2 against MHA, in percent.
pub const KV_CUT: Claim = Claim {
    statement: "MLA+RoPE at r = d/2 cuts the KV cache by 45% vs MHA",
    shown: "criterion: 40-50%",
    criterion: Criterion::Within(40.0, 50.0),
};
/// Change of validation loss of MLA+RoPE at r = d/2 against MHA, in percent.
pub const LOSS_COST: Claim = Claim {
    statement: "... for +0.3% validation loss",
    shown: "criterion here: at most +1%",
    criterion: Criterion::AtMost(1.0),
};
/// Change of validation loss of MLA without RoPE at r = d/2 against MHA, in percent.
pub const NO_ROPE_COST: Claim = Claim {
    statement: "MLA without RoPE is 3-5% worse than MHA",
    shown: "criterion: +2% to +6%",
    criterion: Criterion::Within(2.0, 6.0),
};
/// Decode speed of r = d/2 over full rank (MLA+RoPE, batch 1, absorbed).
pub const HALF_RANK_SPEED: Claim = Claim {
    statement: "r = d/2 decodes 1.4x faster than full-rank MLA",
    shown: "criterion: >= 1.4x",
    criterion: Criterion::AtLeast(1.4),
};
/// The best story-probe score belongs to an MLA+RoPE run.
pub const BEST_STORIES: Claim = Claim {
    statement: "MLA+RoPE writes the best stories",
    shown: "here: mean of the character, object and grammar probes; no judge",
    criterion: Criterion::Best,
};

/// The verdict on one claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Reproduced,
    NotReproduced,
    NotTested,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Reproduced => "reproduced",
            Verdict::NotReproduced => "not reproduced",
            Verdict::NotTested => "not tested",
        })
    }
}

/// A claim beside what was measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub claim: Claim,
    pub measured: String,
    pub verdict: Verdict,
}

impl Finding {
    fn judged(claim: Claim, value: f64, measured: String) -> Finding {
        let verdict = if claim.criterion.holds(value) {
            Verdict::Reproduced
        } else {
            Verdict::NotReproduced
        };
        Finding {
            claim,
            measured,
            verdict,
        }
    }

    fn missing(claim: Claim, what: &str) -> Finding {
        Finding {
            claim,
            measured: format!("no {what} run"),
            verdict: Verdict::NotTested,
        }
    }
}

/// Every claim, judged on `runs`.
pub fn findings(runs: &[RunData]) -> Vec<Finding> {
    let base = baseline(runs);
    let (base_kv, base_loss) = (base.kv_bytes() as f64, base.val_loss());
    let d = base.experiment.model.d_model;
    let find = |rope: bool, rank: usize| {
        runs.iter().find(|r| {
            r.mla().is_some_and(|(k, dr, l)| {
                k == rank && (dr > 0) == rope && l == LatentLayout::Separate
            })
        })
    };
    let delta = |r: &RunData| -> Option<f64> { Some(100.0 * (r.val_loss()? / base_loss? - 1.0)) };
    let mut out = vec![];
    match find(true, d / 2) {
        Some(r) => {
            let cut = 100.0 * (1.0 - r.kv_bytes() as f64 / base_kv);
            out.push(Finding::judged(
                KV_CUT,
                cut,
                format!(
                    "{}: {cut:.1}% smaller ({} vs {} B/token)",
                    r.name,
                    r.kv_bytes(),
                    base.kv_bytes()
                ),
            ));
            out.push(match delta(r) {
                Some(dl) => Finding::judged(
                    LOSS_COST,
                    dl,
                    format!("{}: {} vs {}", r.name, percent(dl), base.name),
                ),
                None => Finding::missing(LOSS_COST, "validation loss for the MLA+RoPE"),
            });
        }
        None => {
            out.push(Finding::missing(KV_CUT, "MLA+RoPE r = d/2"));
            out.push(Finding::missing(LOSS_COST, "MLA+RoPE r = d/2"));
        }
    }
    out.push(
        match find(false, d / 2).and_then(|r| Some((r, delta(r)?))) {
            Some((r, dl)) => Finding::judged(
                NO_ROPE_COST,
                dl,
                format!("{}: {} vs {}", r.name, percent(dl), base.name),
            ),
            None => Finding::missing(NO_ROPE_COST, "MLA r = d/2 without RoPE"),
        },
    );
    let ctx = common_context(runs);
    out.push(match (find(true, d / 2), find(true, d), ctx) {
        (Some(h), Some(f), Some(c)) => match (h.decode_at(c), f.decode_at(c)) {
            (Some(a), Some(b)) => Finding::judged(
                HALF_RANK_SPEED,
                a / b,
                format!(
                    "{} vs {} at context {c}, batch 1, absorbed: {a:.1} vs {b:.1} tok/s = {:.2}x",
                    h.name,
                    f.name,
                    a / b
                ),
            ),
            _ => Finding::missing(HALF_RANK_SPEED, "benched"),
        },
        _ => Finding::missing(HALF_RANK_SPEED, "MLA+RoPE half- and full-rank benched"),
    });
    // Story quality: best mean of consistency and grammar probes.
    let quality = |r: &RunData| {
        r.probes.as_ref().map(|p| {
            (p.character_consistency.value + p.object_consistency.value + p.grammar.value) / 3.0
        })
    };
    let mut scored: Vec<(&RunData, f64)> =
        runs.iter().filter_map(|r| Some((r, quality(r)?))).collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    out.push(match scored.first() {
        Some((best, q)) => {
            let others = scored
                .iter()
                .skip(1)
                .take(3)
                .map(|(r, q)| format!("{} {q:.3}", r.name))
                .collect::<Vec<_>>()
                .join(", ");
            let mla_rope = best.mla().is_some_and(|(_, dr, _)| dr > 0);
            Finding::judged(
                BEST_STORIES,
                if mla_rope { 1.0 } else { 0.0 },
                format!("best: {} ({q:.3}); {others}", best.name),
            )
        }
        None => Finding::missing(BEST_STORIES, "probed"),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criteria_hold_inside_their_bands_only() {
        assert!(KV_CUT.criterion.holds(45.0) && KV_CUT.criterion.holds(40.0));
        assert!(!KV_CUT.criterion.holds(39.9) && !KV_CUT.criterion.holds(50.1));
        assert!(LOSS_COST.criterion.holds(1.0) && !LOSS_COST.criterion.holds(1.01));
        assert!(HALF_RANK_SPEED.criterion.holds(1.4) && !HALF_RANK_SPEED.criterion.holds(1.39));
        assert!(BEST_STORIES.criterion.holds(1.0) && !BEST_STORIES.criterion.holds(0.0));
        assert_eq!(
            KV_CUT.text(),
            "MLA+RoPE at r = d/2 cuts the KV cache by 45% vs MHA (criterion: 40-50%)"
        );
    }
}
