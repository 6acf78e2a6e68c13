//! `mla-lab report`: the paper's comparisons from run folders, as `report.md` and plots
//! (SVG and PNG; plotters needs a system TrueType font to lay out their text).
//!
//! Reads each run's `summary.json`, `metrics.csv`, and when present `eval.json`,
//! `probes.json`, `judge.json` and `bench.json` (written by `mla-lab study`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::artifacts::records::{
    BenchRow, DecodePath, JudgeReport, LossReport, ProbeReport, Share, Stat, TrainSummary,
};
use crate::artifacts::{RunFolder, read_json};
use crate::experiment::Experiment;
use crate::info::percent;
use crate::model::{AttentionConfig, GptConfig, LatentLayout, Positions};

/// Everything known about one run.
pub struct RunData {
    pub name: String,
    pub experiment: Experiment,
    pub summary: TrainSummary,
    pub eval: Option<LossReport>,
    pub probes: Option<ProbeReport>,
    pub judge: Option<JudgeReport>,
    pub bench: Vec<BenchRow>,
    /// (step, val loss) from metrics.csv.
    pub val_curve: Vec<(usize, f64)>,
}

impl RunData {
    pub fn load(dir: &Path) -> Result<RunData> {
        let folder = RunFolder::new(dir);
        let experiment = Experiment::load(folder.experiment())?;
        let summary: TrainSummary = read_json(&folder.summary())?.with_context(|| {
            format!(
                "{}: no summary.json; the run has not finished (train it, or run `mla-lab study`)",
                dir.display()
            )
        })?;
        let metrics = std::fs::read_to_string(folder.metrics()).unwrap_or_default();
        let val_curve = metrics
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                Some((f.first()?.parse().ok()?, f.get(2)?.parse().ok()?))
            })
            .collect();
        Ok(RunData {
            name: experiment.name.clone(),
            summary,
            eval: read_json(&folder.eval())?,
            probes: read_json(&folder.probes())?,
            judge: read_json(&folder.judge())?,
            bench: read_json(&folder.bench())?.unwrap_or_default(),
            val_curve,
            experiment,
        })
    }

    /// Validation loss: the `eval` figure (more windows) when there is one, else the last
    /// validation during training.
    pub fn val_loss(&self) -> Option<f64> {
        self.eval
            .as_ref()
            .map(|e| e.loss)
            .or(self.summary.final_val_loss)
    }

    pub fn kv_bytes(&self) -> usize {
        self.experiment
            .model
            .kv_bytes_per_token(burn::tensor::DType::F32)
    }

    fn label(&self) -> String {
        let m = &self.experiment.model;
        m.attention
            .label(m.n_heads, matches!(m.positions, Positions::Rope(_)))
    }

    fn is_mha(&self) -> bool {
        is_mha(&self.experiment.model)
    }

    /// MLA (rank, rope_dim, layout).
    fn mla(&self) -> Option<(usize, usize, LatentLayout)> {
        match self.experiment.model.attention {
            AttentionConfig::Mla {
                rank,
                rope_dim,
                layout,
                ..
            } => Some((rank, rope_dim, layout)),
            _ => None,
        }
    }

    /// Decode tokens/s at `context` (batch 1; absorbed path for MLA).
    fn decode_at(&self, context: usize) -> Option<f64> {
        self.bench
            .iter()
            .find(|r| r.context == context && r.batch == 1 && r.decode != DecodePath::Naive)
            .map(|r| r.decode_tokens_per_s)
    }
}

/// Full multi-head attention (as many K/V heads as query heads).
fn is_mha(m: &GptConfig) -> bool {
    matches!(m.attention, AttentionConfig::Mha { kv_heads } if kv_heads == m.n_heads)
}

/// The paper's baseline: MHA with learned positions.
pub fn is_baseline(m: &GptConfig) -> bool {
    is_mha(m) && m.positions == Positions::Learned
}

/// The baseline: the MHA run with learned positions, else any MHA run, else the first.
fn baseline(runs: &[RunData]) -> &RunData {
    runs.iter()
        .find(|r| is_baseline(&r.experiment.model))
        .or_else(|| runs.iter().find(|r| r.is_mha()))
        .unwrap_or(&runs[0])
}

/// The full-rank MLA run of `run`'s family (same rope width and layout, rank = d_model).
fn full_rank<'a>(runs: &'a [RunData], run: &RunData) -> Option<&'a RunData> {
    let (_, dr, layout) = run.mla()?;
    runs.iter().find(|r| {
        r.mla().is_some_and(|(rank, d, l)| {
            rank == r.experiment.model.d_model && d == dr && l == layout
        })
    })
}

fn share(s: &Share) -> String {
    format!("{s:.2}")
}

/// The largest context benched for every run.
fn common_context(runs: &[RunData]) -> Option<usize> {
    let mut contexts: Vec<usize> = runs
        .first()?
        .bench
        .iter()
        .map(|r| r.context)
        .filter(|c| runs.iter().all(|r| r.decode_at(*c).is_some()))
        .collect();
    contexts.sort_unstable();
    contexts.last().copied()
}

/// A claim of the paper beside what was measured.
struct Claim {
    claim: &'static str,
    measured: String,
    verdict: &'static str,
}

const KV_CLAIM: &str = "MLA+RoPE at r = d/2 cuts the KV cache by 45% vs MHA (criterion: 40-50%)";
const LOSS_CLAIM: &str = "... for +0.3% validation loss (criterion here: at most +1%)";
const NOROPE_CLAIM: &str = "MLA without RoPE is 3-5% worse than MHA (criterion: +2% to +6%)";
const SPEED_CLAIM: &str = "r = d/2 decodes 1.4x faster than full-rank MLA (criterion: >= 1.4x)";
const STORY_CLAIM: &str = "MLA+RoPE writes the best stories (here: mean of the character, object and grammar probes; no judge)";

fn claims(runs: &[RunData]) -> Vec<Claim> {
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
    let verdict = |ok: bool| if ok { "reproduced" } else { "not reproduced" };
    let missing = |claim: &'static str, what: &str| Claim {
        claim,
        measured: format!("no {what} run"),
        verdict: "not tested",
    };
    let mut out = vec![];
    match find(true, d / 2) {
        Some(r) => {
            let cut = 100.0 * (1.0 - r.kv_bytes() as f64 / base_kv);
            out.push(Claim {
                claim: KV_CLAIM,
                measured: format!(
                    "{}: {cut:.1}% smaller ({} vs {} B/token)",
                    r.name,
                    r.kv_bytes(),
                    base.kv_bytes()
                ),
                verdict: verdict((40.0..=50.0).contains(&cut)),
            });
            match delta(r) {
                Some(dl) => out.push(Claim {
                    claim: LOSS_CLAIM,
                    measured: format!("{}: {} vs {}", r.name, percent(dl), base.name),
                    verdict: verdict(dl <= 1.0),
                }),
                None => out.push(missing(LOSS_CLAIM, "validation loss for the MLA+RoPE")),
            }
        }
        None => {
            out.push(missing(KV_CLAIM, "MLA+RoPE r = d/2"));
            out.push(missing(LOSS_CLAIM, "MLA+RoPE r = d/2"));
        }
    }
    match find(false, d / 2).and_then(|r| Some((r, delta(r)?))) {
        Some((r, dl)) => out.push(Claim {
            claim: NOROPE_CLAIM,
            measured: format!("{}: {} vs {}", r.name, percent(dl), base.name),
            verdict: verdict((2.0..=6.0).contains(&dl)),
        }),
        None => out.push(missing(NOROPE_CLAIM, "MLA r = d/2 without RoPE")),
    }
    let ctx = common_context(runs);
    match (find(true, d / 2), find(true, d), ctx) {
        (Some(h), Some(f), Some(c)) => match (h.decode_at(c), f.decode_at(c)) {
            (Some(a), Some(b)) => out.push(Claim {
                claim: SPEED_CLAIM,
                measured: format!(
                    "{} vs {} at context {c}, batch 1, absorbed: {a:.1} vs {b:.1} tok/s = {:.2}x",
                    h.name,
                    f.name,
                    a / b
                ),
                verdict: verdict(a / b >= 1.4),
            }),
            _ => out.push(missing(SPEED_CLAIM, "benched")),
        },
        _ => out.push(missing(SPEED_CLAIM, "MLA+RoPE half- and full-rank benched")),
    }
    // Story quality: best mean of consistency and grammar probes.
    let quality = |r: &RunData| {
        r.probes.as_ref().map(|p| {
            (p.character_consistency.value + p.object_consistency.value + p.grammar.value) / 3.0
        })
    };
    let mut scored: Vec<(&RunData, f64)> =
        runs.iter().filter_map(|r| Some((r, quality(r)?))).collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    match scored.first() {
        Some((best, q)) => out.push(Claim {
            claim: STORY_CLAIM,
            measured: format!(
                "best: {} ({q:.3}); {}",
                best.name,
                scored
                    .iter()
                    .skip(1)
                    .take(3)
                    .map(|(r, q)| format!("{} {q:.3}", r.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            verdict: verdict(best.mla().is_some_and(|(_, dr, _)| dr > 0)),
        }),
        None => out.push(missing(STORY_CLAIM, "probed")),
    }
    out
}

/// `report.md`.
pub fn markdown(runs: &[RunData], machine: &str) -> String {
    let base = baseline(runs);
    let ctx = common_context(runs);
    let mut s = String::new();
    let _ = writeln!(s, "# mla-lab report\n");
    let _ = writeln!(
        s,
        "{} runs; baseline `{}`. Machine: {machine}. Validation loss: `mla-lab eval` on the held-out split when present, else the last validation of training.\n",
        runs.len(),
        base.name
    );
    let _ = writeln!(s, "## Variants\n");
    let _ = writeln!(
        s,
        "| experiment | attention | params | KV B/token (f32) | KV vs {b} | val loss | Δ loss vs {b} | unigram entropy | train tok/s | decode tok/s{c} | vs full rank |",
        b = base.name,
        c = ctx.map_or(String::new(), |c| format!(" @{c}"))
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in runs {
        let kv_change = 100.0 * (r.kv_bytes() as f64 / base.kv_bytes() as f64 - 1.0);
        let dl = match (r.val_loss(), base.val_loss()) {
            (Some(a), Some(b)) => percent(100.0 * (a / b - 1.0)),
            _ => "-".into(),
        };
        let decode = ctx.and_then(|c| r.decode_at(c));
        let vs_full = match (ctx, full_rank(runs, r)) {
            (Some(c), Some(f)) => match (r.decode_at(c), f.decode_at(c)) {
                (Some(a), Some(b)) => format!("{:.2}×", a / b),
                _ => "-".into(),
            },
            _ => "-".into(),
        };
        let entropy = r
            .eval
            .as_ref()
            .map(|e| e.unigram_entropy)
            .unwrap_or(r.summary.val_unigram_entropy);
        let _ = writeln!(
            s,
            "| {} | {} | {:.2}M | {} | {} | {} | {} | {:.3} | {} | {} | {} |",
            r.name,
            r.label(),
            r.summary.params as f64 / 1e6,
            r.kv_bytes(),
            percent(kv_change),
            r.val_loss().map_or("-".into(), |v| format!("{v:.4}")),
            dl,
            entropy,
            r.summary
                .tokens_per_s
                .map_or("-".into(), |v| format!("{v:.0}")),
            decode.map_or("-".into(), |v| format!("{v:.1}")),
            vs_full,
        );
    }
    if runs.iter().any(|r| r.probes.is_some()) {
        let _ = writeln!(
            s,
            "\n## Story probes (held-out synthetic stories, cut at the resolution)\n"
        );
        let _ = writeln!(
            s,
            "| experiment | character consistency | object consistency | grammar proxy | 3-gram repetition | distinct-2 | distinct-3 | words/continuation |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for r in runs {
            if let Some(p) = &r.probes {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {:.1} |",
                    r.name,
                    share(&p.character_consistency),
                    share(&p.object_consistency),
                    share(&p.grammar),
                    share(&p.repetition_3gram),
                    share(&p.distinct_2),
                    share(&p.distinct_3),
                    p.mean_words
                );
            }
        }
    }
    if runs.iter().any(|r| r.judge.is_some()) {
        let _ = writeln!(s, "\n## LLM judge (1-10, mean ± sd)\n");
        let _ = writeln!(
            s,
            "| experiment | judge | stories | grammar | creativity | consistency |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|");
        for r in runs {
            if let Some(j) = &r.judge {
                let f = |x: &Stat| format!("{:.2} ± {:.2}", x.mean, x.sd);
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} |",
                    r.name,
                    j.model,
                    j.stories,
                    f(&j.grammar),
                    f(&j.creativity),
                    f(&j.consistency)
                );
            }
        }
    }
    let _ = writeln!(s, "\n## The paper's claims\n");
    let _ = writeln!(
        s,
        "| claim (Mehta et al., arXiv 2506.09342) | measured here | verdict |"
    );
    let _ = writeln!(s, "|---|---|---|");
    for c in claims(runs) {
        let _ = writeln!(s, "| {} | {} | {} |", c.claim, c.measured, c.verdict);
    }
    let _ = writeln!(s, "\n## Plots\n");
    for (file, title) in [
        ("val_loss", "Validation loss vs step"),
        ("pareto", "KV bytes per token vs validation loss"),
        ("decode_speed", "Decode tokens/s vs context (batch 1)"),
    ] {
        let _ = writeln!(s, "![{title}]({file}.svg)\n");
    }
    s
}

const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

type Series = Vec<(String, Vec<(f64, f64)>)>;

/// One plot: drawn once per output format.
struct Chart<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    series: &'a Series,
    /// Markers without connecting lines (a scatter).
    points_only: bool,
}

const PLOT_SIZE: (u32, u32) = (900, 560);

fn draw_lines<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &Chart) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let Chart {
        title,
        x_label,
        y_label,
        series,
        points_only,
    } = *chart;
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    if all.is_empty() {
        return Ok(());
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in &all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    let (dx, dy) = (((x1 - x0) * 0.08).max(1e-9), ((y1 - y0) * 0.08).max(1e-3));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((x0 - dx)..(x1 + dx), (y0 - dy)..(y1 + dy))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let style = ShapeStyle::from(&color).filled();
        if !points_only {
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, style)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(name.clone())
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, style));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Registers a system TrueType font for the plots' text; false when none is found.
fn png_font() -> bool {
    static FONT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FONT.get_or_init(|| {
        for path in [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/Library/Fonts/Arial.ttf",
            "C:\\Windows\\Fonts\\arial.ttf",
        ] {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// Writes `<name>.svg` and `<name>.png` (nothing without a font); returns the files written.
fn plot(out: &Path, name: &str, chart: Chart) -> Result<Vec<PathBuf>> {
    // plotters lays text out with the registered font, for SVG too.
    if !png_font() {
        eprintln!("report: no TrueType font found (e.g. install fonts-dejavu); {name} not plotted");
        return Ok(vec![]);
    }
    let svg = out.join(format!("{name}.svg"));
    draw_lines(SVGBackend::new(&svg, PLOT_SIZE).into_drawing_area(), &chart)?;
    let png = out.join(format!("{name}.png"));
    draw_lines(
        BitMapBackend::new(&png, PLOT_SIZE).into_drawing_area(),
        &chart,
    )?;
    Ok(vec![svg, png])
}

/// Writes `report.md` and the plots into `out`; returns the files written.
pub fn write(run_dirs: &[PathBuf], out: &Path, machine: &str) -> Result<Vec<PathBuf>> {
    if run_dirs.is_empty() {
        bail!("no run folders to report on");
    }
    let runs: Vec<RunData> = run_dirs
        .iter()
        .map(|d| RunData::load(d))
        .collect::<Result<_>>()?;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let mut files = vec![];
    let md = out.join("report.md");
    crate::files::write(&md, markdown(&runs, machine).as_bytes())?;
    files.push(md);
    let curves: Series = runs
        .iter()
        .map(|r| {
            (
                r.name.clone(),
                r.val_curve.iter().map(|&(s, l)| (s as f64, l)).collect(),
            )
        })
        .collect();
    files.extend(plot(
        out,
        "val_loss",
        Chart {
            title: "Validation loss",
            x_label: "step",
            y_label: "val loss (nats/token)",
            series: &curves,
            points_only: false,
        },
    )?);
    let pareto: Series = runs
        .iter()
        .filter_map(|r| Some((r.name.clone(), vec![(r.kv_bytes() as f64, r.val_loss()?)])))
        .collect();
    files.extend(plot(
        out,
        "pareto",
        Chart {
            title: "KV cache vs validation loss",
            x_label: "KV bytes per token (f32)",
            y_label: "val loss (nats/token)",
            series: &pareto,
            points_only: true,
        },
    )?);
    let speed: Series = runs
        .iter()
        .map(|r| {
            let mut pts: Vec<(f64, f64)> = r
                .bench
                .iter()
                .filter(|b| b.batch == 1 && b.decode != DecodePath::Naive)
                .map(|b| (b.context as f64, b.decode_tokens_per_s))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            (r.name.clone(), pts)
        })
        .collect();
    files.extend(plot(
        out,
        "decode_speed",
        Chart {
            title: "Decode speed (batch 1, absorbed MLA)",
            x_label: "context (cached tokens)",
            y_label: "decode tokens/s",
            series: &speed,
            points_only: false,
        },
    )?);
    Ok(files)
}
