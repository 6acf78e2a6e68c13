//! `mla-lab decode-map`: the decode map that `scripts/decode-map.sh run` measures,
//! as `map.md` and plots.
//!
//! The measurement folder holds, from one sitting: `<backend>.jsonl` (bench rows of every
//! model, absorbed path) and `<backend>-naive.jsonl` (MLA's reference path) for flex and
//! LibTorch, `pytorch.jsonl` (PyTorch eager at the same points), and the triad's
//! `bandwidth-before.json` and `bandwidth-after.json`. The first model of each backend's file
//! is the baseline that "vs MHA" divides by (the script lists MHA first).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::plots::{Chart, Point, Series, plot};
use crate::artifacts::records::{BenchRow, DecodePath};
use crate::infer::roofline::Bandwidth;

/// Backends the script measures, by the file stem it writes.
const BACKENDS: [(&str, &str); 2] = [("flex", "flex (burn)"), ("libtorch", "LibTorch (burn)")];

/// The paper's speedup of r = d/2 over full rank (Mehta et al., on an A100).
const PAPER_SPEEDUP: f64 = 1.4;

/// The experiment the map's headline rows are about, and the one PyTorch's MLA mirrors.
const HEADLINE: &str = "mla_rope_half";

/// One point of `benches/pytorch/gpt.py decode --json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PytorchPoint {
    pub torch: String,
    pub attn: String,
    pub rank: Option<usize>,
    pub batch: usize,
    pub cache: usize,
    pub ms_per_token: f64,
    pub threads: usize,
}

impl PytorchPoint {
    /// The mla-lab experiment this PyTorch model mirrors: gpt.py's MHA has learned positions
    /// (experiments/mha.ron); its MLA has separate latents and a rotary key of 32, so rank 192
    /// is experiments/mla_rope_half.ron.
    fn mirrors(&self) -> Option<&'static str> {
        match (self.attn.as_str(), self.rank) {
            ("mha", _) => Some("mha"),
            ("mla", Some(192)) => Some(HEADLINE),
            _ => None,
        }
    }
}

/// One backend's rows: every model on the absorbed path, and the naive ones.
pub struct BackendRows {
    pub stem: &'static str,
    pub name: &'static str,
    pub rows: Vec<BenchRow>,
    pub naive: Vec<BenchRow>,
}

impl BackendRows {
    fn baseline(&self) -> Option<&str> {
        self.rows.first().map(|r| r.experiment.as_str())
    }

    fn find(&self, experiment: &str, batch: usize, context: usize) -> Option<&BenchRow> {
        self.rows
            .iter()
            .find(|r| r.experiment == experiment && r.batch == batch && r.context == context)
    }

    /// `row`'s speed over the baseline's at the same batch and cache.
    fn vs_baseline(&self, row: &BenchRow) -> Option<f64> {
        let base = self.find(self.baseline()?, row.batch, row.context)?;
        Some(base.decode_ms_per_token / row.decode_ms_per_token)
    }
}

/// Everything one sitting measured.
pub struct DecodeMap {
    pub backends: Vec<BackendRows>,
    pub pytorch: Vec<PytorchPoint>,
    pub before: Bandwidth,
    /// The triad after the map; absent when the sitting was cut short after the benches.
    pub after: Option<Bandwidth>,
    pub revision: Option<String>,
}

fn json_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

impl DecodeMap {
    /// Reads a measurement folder; a backend without its file is left out, the triad before
    /// the map is required (a map without its roof is not one), the one after is not.
    pub fn load(dir: &Path) -> Result<DecodeMap> {
        let read_bw = |name: &str| -> Result<Bandwidth> {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("{}: the triad of the sitting", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{}", path.display()))
        };
        let mut backends = Vec::new();
        for (stem, name) in BACKENDS {
            let path = dir.join(format!("{stem}.jsonl"));
            if !path.exists() {
                continue;
            }
            let naive = dir.join(format!("{stem}-naive.jsonl"));
            backends.push(BackendRows {
                stem,
                name,
                rows: json_lines(&path)?,
                naive: if naive.exists() {
                    json_lines(&naive)?
                } else {
                    vec![]
                },
            });
        }
        if backends.is_empty() {
            bail!(
                "{}: no flex.jsonl or libtorch.jsonl; run scripts/decode-map.sh run first",
                dir.display()
            );
        }
        if let Some(empty) = backends.iter().find(|b| b.rows.is_empty()) {
            bail!(
                "{}: {}.jsonl holds no bench rows: there is nothing to map (was the sitting \
                 cut short? run scripts/decode-map.sh run again)",
                dir.display(),
                empty.stem
            );
        }
        let pytorch = dir.join("pytorch.jsonl");
        Ok(DecodeMap {
            backends,
            pytorch: if pytorch.exists() {
                json_lines(&pytorch)?
            } else {
                vec![]
            },
            before: read_bw("bandwidth-before.json")?,
            after: match dir.join("bandwidth-after.json").exists() {
                true => Some(read_bw("bandwidth-after.json")?),
                false => None,
            },
            revision: std::fs::read_to_string(dir.join("revision.txt"))
                .ok()
                .map(|s| s.trim().to_string()),
        })
    }

    /// The roof: the lower of the sitting's best triads.
    pub fn roof_gb_per_s(&self) -> f64 {
        let after = self
            .after
            .as_ref()
            .map_or(f64::INFINITY, |a| a.best_gb_per_s);
        self.before.best_gb_per_s.min(after)
    }

    fn pytorch_ms(&self, experiment: &str, batch: usize, cache: usize) -> Option<f64> {
        self.pytorch
            .iter()
            .find(|p| p.mirrors() == Some(experiment) && p.batch == batch && p.cache == cache)
            .map(|p| p.ms_per_token)
    }

    /// The faster mla-lab backend's time at a point, with the backend's name.
    fn fastest(&self, experiment: &str, batch: usize, cache: usize) -> Option<(f64, &str)> {
        self.backends
            .iter()
            .filter_map(|b| {
                b.find(experiment, batch, cache)
                    .map(|r| (r.decode_ms_per_token, b.name))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
    }
}

fn grid(rows: &[BenchRow]) -> (Vec<usize>, Vec<usize>) {
    let mut batches: Vec<usize> = rows.iter().map(|r| r.batch).collect();
    let mut caches: Vec<usize> = rows.iter().map(|r| r.context).collect();
    for v in [&mut batches, &mut caches] {
        v.sort_unstable();
        v.dedup();
    }
    (batches, caches)
}

fn ratio(x: Option<f64>) -> String {
    x.map_or("-".into(), |x| format!("{x:.2}×"))
}

/// Points as `batch b / cache c (x.xx×)`, or "none".
fn listed(points: &[(usize, usize, f64)]) -> String {
    if points.is_empty() {
        return "none".into();
    }
    points
        .iter()
        .map(|(b, c, x)| format!("batch {b} / cache {c} ({x:.2}×)"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Markdown of the map.
pub fn markdown(map: &DecodeMap) -> String {
    let roof = map.roof_gb_per_s();
    let mut s = String::from("# Decode map: batch × cache at paper scale\n\n");
    s += "Generated by `mla-lab decode-map` from the measurements of `scripts/decode-map.sh run`";
    if let Some(rev) = &map.revision {
        s += &format!(" (revision `{}`)", &rev[..rev.len().min(7)]);
    }
    s += ". Edit the code, not this file.\n\n";
    s += &format!(
        "Machine bandwidth (STREAM triad, {} threads, {} MiB): {:.1} GB/s best before the map, \
         {}; the roof below is {roof:.1} GB/s.\n\n",
        map.before.threads,
        map.before.bytes >> 20,
        map.before.best_gb_per_s,
        map.after
            .as_ref()
            .map_or("not measured after it".into(), |a| format!(
                "{:.1} GB/s after",
                a.best_gb_per_s
            )),
    );
    s += "Each point times single-token decode steps over a cache filled with random values \
          (`bench --fill random`); ms/step is per step of the whole batch. Bytes read per step are \
          the formula's minimum: every weight once plus the filled cache. GB/s is that over the \
          step time; `roof` is GB/s over the triad.\n\n";
    for b in &map.backends {
        s += &backend_section(map, b, roof);
    }
    s += &pytorch_section(map);
    s
}

fn backend_section(map: &DecodeMap, b: &BackendRows, roof: f64) -> String {
    let mut s = format!("## {}\n\n", b.name);
    let (batches, caches) = grid(&b.rows);
    let headline: Vec<&BenchRow> = b.rows.iter().filter(|r| r.experiment == HEADLINE).collect();
    let mut holds = vec![];
    let mut short = vec![];
    let mut beats = vec![];
    for r in &headline {
        if let Some(x) = r.decode_vs_full_rank {
            if x >= PAPER_SPEEDUP {
                holds.push((r.batch, r.context, x));
            } else {
                short.push((r.batch, r.context, x));
            }
        }
        if let Some(x) = b.vs_baseline(r).filter(|&x| x > 1.0) {
            beats.push((r.batch, r.context, x));
        }
    }
    s += &format!(
        "- The paper's {PAPER_SPEEDUP}× (MLA+RoPE r = d/2 over its full-rank twin, absorbed) holds at: {}.\n- It does not at: {}.\n- MLA+RoPE r = d/2 decodes faster than {} at: {}.\n\n",
        listed(&holds),
        listed(&short),
        b.baseline().unwrap_or("the first model"),
        listed(&beats)
    );
    s += &format!(
        "![speedup over MHA]({0}-vs-mha.svg)\n![speedup over full rank]({0}-vs-full.svg)\n![share of the bandwidth]({0}-roof.svg)\n\n",
        b.stem
    );
    s += &format!(
        "MLA+RoPE r = d/2 (absorbed) over {}, by batch (rows) and cache (columns):\n\n",
        b.baseline().unwrap_or("the first model")
    );
    s += "| batch |";
    for c in &caches {
        s += &format!(" {c} |");
    }
    s += "\n|---:|";
    s += &"---:|".repeat(caches.len());
    s += "\n";
    for &batch in &batches {
        s += &format!("| {batch} |");
        for &c in &caches {
            let x = b.find(HEADLINE, batch, c).and_then(|r| b.vs_baseline(r));
            s += &format!(" {} |", ratio(x));
        }
        s += "\n";
    }
    s += "\nEvery point:\n\n| model | path | batch | cache | read/step MiB | ms/step | GB/s | of roof | vs MHA | vs full rank | PyTorch ms/step | PyTorch / ours |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for r in b.rows.iter().chain(&b.naive) {
        let gb = r.decode_gb_per_s.unwrap_or(f64::NAN);
        let torch = (r.decode != DecodePath::Naive)
            .then(|| map.pytorch_ms(&r.experiment, r.batch, r.context))
            .flatten();
        s += &format!(
            "| {} | {} | {} | {} | {:.1} | {:.2} | {:.1} | {:.0}% | {} | {} | {} | {} |\n",
            r.experiment,
            r.decode,
            r.batch,
            r.context,
            r.decode_bytes_per_step.unwrap_or(0) as f64 / (1 << 20) as f64,
            r.decode_ms_per_token,
            gb,
            100.0 * gb / roof,
            ratio(b.vs_baseline(r)),
            ratio(r.decode_vs_full_rank),
            torch.map_or("-".into(), |t| format!("{t:.2}")),
            ratio(torch.map(|t| t / r.decode_ms_per_token)),
        );
    }
    s + "\n"
}

fn pytorch_section(map: &DecodeMap) -> String {
    if map.pytorch.is_empty() {
        return "## PyTorch\n\nNot measured in this sitting.\n".into();
    }
    let p0 = &map.pytorch[0];
    let mut s = format!(
        "## Against PyTorch eager\n\nPyTorch {} eager, {} threads, the same models \
         (`benches/pytorch/gpt.py decode --fill random`; its MLA is absorbed). `ours / PyTorch` \
         above 1.00× means mla-lab's faster backend takes less time per step.\n\n\
         | model | batch | cache | PyTorch ms/step | ours ms/step (backend) | ours / PyTorch |\n|---|---:|---:|---:|---:|---:|\n",
        p0.torch, p0.threads
    );
    let mut behind = 0;
    for p in &map.pytorch {
        let Some(exp) = p.mirrors() else { continue };
        let ours = map.fastest(exp, p.batch, p.cache);
        let x = ours.map(|(ms, _)| p.ms_per_token / ms);
        behind += usize::from(x.is_some_and(|x| x < 1.0));
        s += &format!(
            "| {exp} | {} | {} | {:.2} | {} | {} |\n",
            p.batch,
            p.cache,
            p.ms_per_token,
            ours.map_or("-".into(), |(ms, name)| format!("{ms:.2} ({name})")),
            ratio(x)
        );
    }
    s += &format!(
        "\nPoints where mla-lab's faster backend is slower than PyTorch: {behind} of {}.\n",
        map.pytorch.len()
    );
    s
}

/// Speedup lines over the cache, one per batch, for the headline model.
fn speedup_series(b: &BackendRows, of: impl Fn(&BenchRow) -> Option<f64>) -> Series {
    let (batches, _) = grid(&b.rows);
    batches
        .iter()
        .map(|&batch| {
            let points = b
                .rows
                .iter()
                .filter(|r| r.experiment == HEADLINE && r.batch == batch)
                .filter_map(|r| of(r).map(|y| Point::at(r.context as f64, y)))
                .collect();
            (format!("batch {batch}"), points)
        })
        .collect()
}

/// GB/s over the roof along the cache, one line per model, at `batch`.
fn roof_series(b: &BackendRows, batch: usize, roof: f64) -> Series {
    let mut names: Vec<&str> = b.rows.iter().map(|r| r.experiment.as_str()).collect();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let points = b
                .rows
                .iter()
                .filter(|r| r.experiment == name && r.batch == batch)
                .filter_map(|r| {
                    r.decode_gb_per_s
                        .map(|gb| Point::at(r.context as f64, gb / roof))
                })
                .collect();
            (name.to_string(), points)
        })
        .collect()
}

/// The batch the roofline plot is drawn at: 16 where measured, else the largest.
fn roof_batch(b: &BackendRows) -> Option<usize> {
    let (batches, _) = grid(&b.rows);
    batches
        .contains(&16)
        .then_some(16)
        .or(batches.last().copied())
}

/// Writes `map.md` and the plots into `out`; returns the files written.
pub fn render(map: &DecodeMap, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("{}", out.display()))?;
    let md = out.join("map.md");
    std::fs::write(&md, markdown(map)).with_context(|| format!("{}", md.display()))?;
    let mut written = vec![md];
    for b in &map.backends {
        // (file suffix, title, y label, lines)
        let mut charts = vec![
            (
                "vs-mha",
                format!("{}: MLA+RoPE r=d/2 (absorbed) over MHA", b.name),
                "speedup (MHA ms/step ÷ MLA ms/step)",
                speedup_series(b, |r| b.vs_baseline(r)),
            ),
            (
                "vs-full",
                format!("{}: r=d/2 over full rank (absorbed); paper 1.4×", b.name),
                "speedup (full-rank ms/step ÷ r=d/2 ms/step)",
                speedup_series(b, |r| r.decode_vs_full_rank),
            ),
        ];
        if let Some(batch) = roof_batch(b) {
            charts.push((
                "roof",
                format!("{}: share of the triad's bandwidth, batch {batch}", b.name),
                "GB/s read (formula) ÷ triad GB/s",
                roof_series(b, batch, map.roof_gb_per_s()),
            ));
        }
        for (suffix, title, y_label, series) in &charts {
            let chart = Chart {
                title,
                x_label: "cache length (tokens)",
                y_label,
                series,
                points_only: false,
                frontier: None,
                fits: None,
            };
            written.extend(plot(out, &format!("{}-{suffix}", b.stem), chart)?);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::records::CacheFill;

    fn row(experiment: &str, batch: usize, context: usize, ms: f64, full: Option<f64>) -> BenchRow {
        BenchRow {
            experiment: experiment.into(),
            run: None,
            attention: String::new(),
            decode: DecodePath::Absorbed,
            rank: None,
            d_model: 384,
            batch,
            context,
            kv_bytes_per_token_formula: 1,
            kv_bytes_per_token_measured: 1,
            cache_bytes: 0,
            fill: CacheFill::Random,
            prefill_tokens_per_s: None,
            decode_tokens_per_s: batch as f64 / ms,
            decode_ms_per_token: ms,
            decode_bytes_per_step: Some(1 << 20),
            decode_gb_per_s: Some(2.0),
            decode_ms_per_token_range: None,
            decode_steps: Some(8),
            repeats: Some(3),
            decode_ms_per_token_rounds: vec![],
            kv_vs_first: 1.0,
            decode_vs_first: 1.0,
            decode_vs_full_rank: full,
            weights: "random".into(),
            load_before: None,
            cpu_threads: None,
        }
    }

    fn bandwidth(best: f64) -> Bandwidth {
        Bandwidth {
            best_gb_per_s: best,
            median_gb_per_s: best,
            bytes: 3 << 29,
            threads: 2,
            passes: 10,
        }
    }

    #[test]
    fn the_map_says_where_the_paper_speedup_holds_and_where_mla_beats_mha() {
        let rows = vec![
            row("mha", 1, 512, 10.0, None),
            row("mha", 16, 2048, 60.0, None),
            row(HEADLINE, 1, 512, 12.5, Some(1.1)),
            row(HEADLINE, 16, 2048, 40.0, Some(1.5)),
        ];
        let map = DecodeMap {
            backends: vec![BackendRows {
                stem: "flex",
                name: "flex (burn)",
                rows,
                naive: vec![],
            }],
            pytorch: vec![PytorchPoint {
                torch: "2.15.0".into(),
                attn: "mla".into(),
                rank: Some(192),
                batch: 16,
                cache: 2048,
                ms_per_token: 50.0,
                threads: 2,
            }],
            before: bandwidth(16.0),
            after: Some(bandwidth(14.0)),
            revision: Some("0123456789".into()),
        };
        assert_eq!(map.roof_gb_per_s(), 14.0);
        let md = markdown(&map);
        assert!(
            md.contains("holds at: batch 16 / cache 2048 (1.50×)."),
            "{md}"
        );
        assert!(
            md.contains("does not at: batch 1 / cache 512 (1.10×)."),
            "{md}"
        );
        assert!(
            md.contains("faster than mha at: batch 16 / cache 2048 (1.50×)."),
            "{md}"
        );
        // 2 GB/s of a 14 GB/s roof; PyTorch's 50 ms against our 40 ms.
        assert!(
            md.contains("| 14% | 1.50× | 1.50× | 50.00 | 1.25× |"),
            "{md}"
        );
        assert!(md.contains("slower than PyTorch: 0 of 1"), "{md}");
        assert!(md.contains("(revision `0123456`)"), "{md}");
    }

    #[test]
    fn a_folder_without_rows_or_bandwidth_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("mla-lab-map-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = DecodeMap::load(&dir).err().unwrap().to_string();
        assert!(err.contains("no flex.jsonl or libtorch.jsonl"), "{err}");
        std::fs::write(dir.join("flex.jsonl"), "").unwrap();
        let err = DecodeMap::load(&dir).err().unwrap().to_string();
        assert!(err.contains("flex.jsonl holds no bench rows"), "{err}");
        let line = serde_json::to_string(&row("mha", 1, 512, 10.0, None)).unwrap();
        std::fs::write(dir.join("flex.jsonl"), line + "\n").unwrap();
        let err = format!("{:#}", DecodeMap::load(&dir).err().unwrap());
        assert!(err.contains("bandwidth-before.json"), "{err}");
        let bw = serde_json::to_string(&bandwidth(10.0)).unwrap();
        std::fs::write(dir.join("bandwidth-before.json"), &bw).unwrap();
        let map = DecodeMap::load(&dir).unwrap();
        assert!(map.after.is_none());
        assert_eq!(map.roof_gb_per_s(), 10.0);
        assert_eq!(map.backends.len(), 1);
        assert_eq!(map.backends[0].rows.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
