//! The token cache: a corpus tokenized once, stored as flat little-endian binaries (u16 when
//! the vocabulary fits, else u32) with a JSON manifest, in a folder named after everything
//! that determines its contents (source, tokenizer config, split). A later run with the same
//! inputs reuses it; a changed source file, generator or tokenizer rebuilds it.
//!
//! Layout of `<root>/tokens/<key>/`: `manifest.json`, `train.bin`, `val.bin`, and for a
//! trained BPE its `tokenizer.json`. Each split is its stories' tokens, every story followed
//! by `<|endoftext|>`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::stories;
use super::stories::GENERATOR_VERSION;
use super::tinystories;
use super::tokenizer::Tokenizer;
use crate::data::config::{DataConfig, DataSource, TokenizerConfig};
use crate::files;
use crate::progress::Progress;
use crate::rng::Rng;
use crate::rng::fnv1a;

/// Bumped when the file layout changes.
const CACHE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// Where the stories came from, in words.
    pub source: String,
    /// Identifies the stories' content (generator version and seed, or a hash of the file).
    pub source_fingerprint: String,
    pub stories: usize,
    pub train_stories: usize,
    pub val_stories: usize,
    /// [`Tokenizer::fingerprint`] of the tokenizer that produced the ids.
    pub tokenizer: String,
    pub vocab_size: usize,
    pub eot: u32,
    /// How wide each stored id is.
    pub dtype: TokenWidth,
    pub train_tokens: usize,
    pub val_tokens: usize,
    pub split_seed: u64,
    pub val_fraction: f64,
}

/// The width of the ids in `train.bin`/`val.bin` (little-endian), written `"u16"`/`"u32"` in the
/// manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenWidth {
    U16,
    U32,
}

impl TokenWidth {
    /// The narrowest width that holds every id of a vocabulary of `vocab_size`.
    pub fn for_vocab(vocab_size: usize) -> TokenWidth {
        if vocab_size <= 1 << 16 {
            TokenWidth::U16
        } else {
            TokenWidth::U32
        }
    }

    fn bytes(self) -> usize {
        match self {
            TokenWidth::U16 => 2,
            TokenWidth::U32 => 4,
        }
    }
}

impl std::fmt::Display for TokenWidth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenWidth::U16 => "u16",
            TokenWidth::U32 => "u32",
        })
    }
}

/// A tokenized corpus, in memory.
#[derive(Debug)]
pub struct TokenData {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub tokenizer: Tokenizer,
    pub train: Vec<u32>,
    pub val: Vec<u32>,
    /// True when an existing cache was reused.
    pub reused: bool,
}

impl TokenData {
    /// One line: stories and tokens of each split, the tokenizer and the cache folder.
    pub fn describe(&self) -> String {
        let m = &self.manifest;
        format!(
            "{} stories ({} train, {} val) -> {} train + {} val tokens, {} ({} tokens), {}",
            m.stories,
            m.train_stories,
            m.val_stories,
            m.train_tokens,
            m.val_tokens,
            self.tokenizer.name(),
            m.vocab_size,
            self.dir.display(),
        )
    }
}

/// Entropy of the token frequencies (nats per token): the loss of a model that knows only how
/// often each token occurs. A language model should end well below it.
pub fn unigram_entropy(tokens: &[u32]) -> f64 {
    let mut counts = std::collections::HashMap::<u32, usize>::new();
    for &t in tokens {
        *counts.entry(t).or_default() += 1;
    }
    let n = tokens.len() as f64;
    counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.ln()
        })
        .sum()
}

/// A data source in words, and a fingerprint of its content (for a file, a hash of its
/// bytes; for the generator, its version, count and seed — no need to generate).
pub fn fingerprint(source: &DataSource) -> Result<(String, String)> {
    match source {
        DataSource::Synthetic { count, seed } => Ok((
            format!("Synthetic(count: {count}, seed: {seed})"),
            format!("synthetic-v{GENERATOR_VERSION}-{count}-{seed}"),
        )),
        DataSource::TinyStories { path } => {
            let bytes =
                std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
            Ok((
                format!("TinyStories({})", path.display()),
                format!("file-{:016x}-{}", fnv1a(&bytes), bytes.len()),
            ))
        }
    }
}

/// The stories of a data source.
pub fn load_source(source: &DataSource) -> Result<Vec<String>> {
    match source {
        DataSource::Synthetic { count, seed } => Ok(stories::generate_shown(*count, *seed)
            .into_iter()
            .map(|s| s.text)
            .collect()),
        DataSource::TinyStories { path } => {
            let started = Instant::now();
            let stories = tinystories::load(path)?;
            eprintln!(
                "stories: read {} stories from {} ({:.2} s)",
                stories.len(),
                path.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(stories)
        }
    }
}

/// Story indices of the validation split: `round(n * fraction)` stories (at least one, and
/// at least one left for training), chosen by a seeded shuffle.
pub fn split(n: usize, fraction: f64, seed: u64) -> Result<Vec<bool>> {
    if n < 2 {
        bail!("{n} stories cannot be split into training and validation; accepted: at least 2");
    }
    let n_val = ((n as f64 * fraction).round() as usize).clamp(1, n - 1);
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(seed ^ 0x5_1EED_5EED);
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut is_val = vec![false; n];
    for &i in &order[..n_val] {
        is_val[i] = true;
    }
    Ok(is_val)
}

/// The cache folder for these inputs.
pub fn cache_dir(root: &Path, data: &DataConfig, source_fp: &str, seed: u64) -> PathBuf {
    let tok = match &data.tokenizer {
        TokenizerConfig::Gpt2 => "gpt2".to_string(),
        TokenizerConfig::Bpe { vocab_size } => format!("bpe{vocab_size}"),
    };
    let key = format!(
        "{source_fp}|{tok}|{}|{seed}|v{CACHE_VERSION}",
        data.val_fraction
    );
    root.join("tokens")
        .join(format!("{tok}-{:016x}", fnv1a(key.as_bytes())))
}

/// Tokenizes the experiment's data into `<root>/tokens/…`, or reuses what is there.
pub fn prepare(data: &DataConfig, seed: u64, root: &Path) -> Result<TokenData> {
    let (source, source_fp) = fingerprint(&data.source)?;
    let dir = cache_dir(root, data, &source_fp, seed);
    match open_matching(&dir, &source_fp, data, seed) {
        Ok(Some(d)) => {
            eprintln!(
                "tokens: reusing {} ({} train + {} val tokens)",
                dir.display(),
                d.manifest.train_tokens,
                d.manifest.val_tokens
            );
            return Ok(d);
        }
        Ok(None) => {}
        Err(e) => eprintln!("tokens: rebuilding {}: {e:#}", dir.display()),
    }
    let texts = load_source(&data.source)?;
    build(&dir, texts, source, source_fp, data, seed)
}

/// The cache at `dir` if it was built from exactly these inputs; `None` when there is none.
fn open_matching(
    dir: &Path,
    source_fp: &str,
    data: &DataConfig,
    seed: u64,
) -> Result<Option<TokenData>> {
    let manifest_path = dir.join("manifest.json");
    if !manifest_path.exists() {
        return Ok(None);
    }
    let tokenizer = Tokenizer::for_config(&data.tokenizer, &dir.join("tokenizer.json"))?;
    let d = open(dir, tokenizer)?;
    let m = &d.manifest;
    if m.source_fingerprint != source_fp
        || m.split_seed != seed
        || m.val_fraction != data.val_fraction
    {
        bail!("{}: built from other inputs", manifest_path.display());
    }
    Ok(Some(d))
}

/// Opens a cache that must have been built with `tokenizer`.
pub fn open(dir: &Path, tokenizer: Tokenizer) -> Result<TokenData> {
    let manifest_path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("{}: cannot read", manifest_path.display()))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a token-cache manifest", manifest_path.display()))?;
    if manifest.version != CACHE_VERSION {
        bail!(
            "{}: cache version {} (this build reads {CACHE_VERSION})",
            manifest_path.display(),
            manifest.version
        );
    }
    if manifest.tokenizer != tokenizer.fingerprint() {
        bail!(
            "{}: the tokens were made by tokenizer {} but {} was given; rebuild the cache (delete {})",
            manifest_path.display(),
            manifest.tokenizer,
            tokenizer.fingerprint(),
            dir.display()
        );
    }
    let vocab = tokenizer.vocab_size();
    let train = read_tokens(
        &dir.join("train.bin"),
        manifest.dtype,
        manifest.train_tokens,
        vocab,
    )?;
    let val = read_tokens(
        &dir.join("val.bin"),
        manifest.dtype,
        manifest.val_tokens,
        vocab,
    )?;
    Ok(TokenData {
        dir: dir.to_path_buf(),
        manifest,
        tokenizer,
        train,
        val,
        reused: true,
    })
}

fn build(
    dir: &Path,
    texts: Vec<String>,
    source: String,
    source_fp: String,
    data: &DataConfig,
    seed: u64,
) -> Result<TokenData> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let is_val = split(texts.len(), data.val_fraction, seed)?;
    let train_texts = || {
        texts
            .iter()
            .zip(&is_val)
            .filter(|(_, v)| !**v)
            .map(|(t, _)| t.as_str())
    };

    let tokenizer = match &data.tokenizer {
        TokenizerConfig::Gpt2 => Tokenizer::gpt2()?,
        TokenizerConfig::Bpe { vocab_size } => {
            let progress = Progress::new("tokenizer", 1);
            let tk = Tokenizer::train_bpe(train_texts(), *vocab_size)?;
            progress.finish(&format!(
                "trained a {vocab_size}-token BPE on the training split"
            ));
            tk.save(&dir.join("tokenizer.json"))?;
            tk
        }
    };

    let progress = Progress::new("tokenize", texts.len() as u64);
    let eot = tokenizer.eot();
    let encoded = encode_all(&tokenizer, &texts, &progress)?;
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (ids, v) in encoded.into_iter().zip(&is_val) {
        let out = if *v { &mut val } else { &mut train };
        out.extend(ids);
        out.push(eot);
    }
    progress.finish(&format!("{} train + {} val tokens", train.len(), val.len()));

    let dtype = TokenWidth::for_vocab(tokenizer.vocab_size());
    write_tokens(&dir.join("train.bin"), dtype, &train)?;
    write_tokens(&dir.join("val.bin"), dtype, &val)?;
    let n_val = is_val.iter().filter(|v| **v).count();
    let manifest = Manifest {
        version: CACHE_VERSION,
        source,
        source_fingerprint: source_fp,
        stories: texts.len(),
        train_stories: texts.len() - n_val,
        val_stories: n_val,
        tokenizer: tokenizer.fingerprint(),
        vocab_size: tokenizer.vocab_size(),
        eot,
        dtype,
        train_tokens: train.len(),
        val_tokens: val.len(),
        split_seed: seed,
        val_fraction: data.val_fraction,
    };
    // The manifest goes last: a cache without one is never reused.
    files::write_json(&dir.join("manifest.json"), &manifest)?;
    Ok(TokenData {
        dir: dir.to_path_buf(),
        manifest,
        tokenizer,
        train,
        val,
        reused: false,
    })
}

/// Encodes every story, on all cores.
fn encode_all(
    tokenizer: &Tokenizer,
    texts: &[String],
    progress: &Progress,
) -> Result<Vec<Vec<u32>>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = texts.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<Vec<u32>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = texts
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut out = Vec::with_capacity(part.len());
                    for (i, text) in part.iter().enumerate() {
                        out.push(tokenizer.encode(text)?);
                        if i % 1000 == 999 {
                            progress.inc(1000);
                        }
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("tokenizer thread panicked"))
            .collect()
    });
    let mut all = Vec::with_capacity(texts.len());
    for part in parts {
        all.extend(part?);
    }
    Ok(all)
}

fn write_tokens(path: &Path, dtype: TokenWidth, tokens: &[u32]) -> Result<()> {
    let bytes: Vec<u8> = match dtype {
        TokenWidth::U16 => tokens
            .iter()
            .flat_map(|&t| (t as u16).to_le_bytes())
            .collect(),
        TokenWidth::U32 => tokens.iter().flat_map(|&t| t.to_le_bytes()).collect(),
    };
    files::write(path, &bytes)
}

/// The ids of a token file, which must hold `expected` ids below `vocab` (what the tokenizer
/// makes; a larger id would index past the model's embedding).
fn read_tokens(path: &Path, dtype: TokenWidth, expected: usize, vocab: usize) -> Result<Vec<u32>> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let width = dtype.bytes();
    if bytes.len() != expected * width {
        bail!(
            "{}: {} bytes, but the manifest says {expected} {dtype} tokens ({} bytes): the cache is corrupt",
            path.display(),
            bytes.len(),
            expected * width
        );
    }
    let ids: Vec<u32> = match width {
        2 => bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32)
            .collect(),
        _ => bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    };
    if let Some((at, id)) = ids
        .iter()
        .enumerate()
        .find(|&(_, &id)| id as usize >= vocab)
    {
        bail!(
            "{}: token {at} is id {id}, outside the tokenizer's {vocab} ids (accepted: 0 to {}): \
             the cache is corrupt; delete its folder to build it again",
            path.display(),
            vocab - 1
        );
    }
    Ok(ids)
}

#[cfg(test)]
mod tests;
