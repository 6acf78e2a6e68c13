//! Text ↔ token ids.
//!
//! - `Gpt2`: GPT-2's byte-level BPE (50,257 tokens) from `tiktoken-rs`, whose ranks ship
//!   inside the crate (no download). `<|endoftext|>` is 50256.
//! - `Bpe`: a byte-level BPE trained with Hugging Face `tokenizers` on the training split,
//!   saved as `tokenizer.json`. `<|endoftext|>` is a special token of its own.
//!
//! Both are byte-level, so decoding gives back the text exactly. Stories are encoded one by
//! one and separated by `<|endoftext|>`.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use tiktoken_rs::CoreBPE;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer};

use super::stories::END_OF_TEXT;
use crate::data::config::TokenizerConfig;

pub enum Tokenizer {
    Gpt2(Box<CoreBPE>),
    Bpe(Box<HfTokenizer>),
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tokenizer({}, {} tokens)",
            self.name(),
            self.vocab_size()
        )
    }
}

/// Byte-level pre-tokenizer/decoder without an added prefix space, so text round-trips.
fn byte_level() -> ByteLevel {
    ByteLevel::new(false, true, true)
}

impl Tokenizer {
    pub fn gpt2() -> Result<Tokenizer> {
        Ok(Tokenizer::Gpt2(Box::new(
            tiktoken_rs::r50k_base().map_err(|e| anyhow!("loading GPT-2 ranks: {e}"))?,
        )))
    }

    /// Trains a byte-level BPE of up to `vocab_size` tokens (`<|endoftext|>` included) on
    /// `texts`; fewer when the corpus runs out of pairs seen at least twice.
    pub fn train_bpe<'a>(
        texts: impl Iterator<Item = &'a str> + Send,
        vocab_size: usize,
    ) -> Result<Tokenizer> {
        if vocab_size < 257 {
            bail!(
                "a byte-level BPE needs at least 257 tokens (256 bytes + <|endoftext|>), got {vocab_size}"
            );
        }
        let mut tk = HfTokenizer::new(BPE::default());
        tk.with_pre_tokenizer(Some(byte_level()));
        tk.with_decoder(Some(byte_level()));
        let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(vec![AddedToken::from(END_OF_TEXT, true)])
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build()
            .into();
        tk.train(&mut trainer, texts)
            .map_err(|e| anyhow!("training the BPE tokenizer: {e}"))?;
        Ok(Tokenizer::Bpe(Box::new(tk)))
    }

    /// Loads a `tokenizer.json` written by [`Tokenizer::save`].
    pub fn load(path: &Path) -> Result<Tokenizer> {
        let tk = HfTokenizer::from_file(path)
            .map_err(|e| anyhow!("{}: not a tokenizer file: {e}", path.display()))?;
        if tk.token_to_id(END_OF_TEXT).is_none() {
            bail!(
                "{}: the tokenizer has no {END_OF_TEXT} token",
                path.display()
            );
        }
        Ok(Tokenizer::Bpe(Box::new(tk)))
    }

    /// Writes `tokenizer.json` (BPE only; GPT-2 needs no file).
    pub fn save(&self, path: &Path) -> Result<()> {
        match self {
            Tokenizer::Gpt2(_) => Ok(()),
            Tokenizer::Bpe(tk) => crate::files::write_with(path, |tmp| {
                tk.save(tmp, false).map_err(|e| anyhow!("{e}"))
            }),
        }
    }

    /// The tokenizer an experiment asks for: GPT-2, or the BPE saved at `bpe_path`.
    pub fn for_config(config: &TokenizerConfig, bpe_path: &Path) -> Result<Tokenizer> {
        match config {
            TokenizerConfig::Gpt2 => Tokenizer::gpt2(),
            TokenizerConfig::Bpe { vocab_size } => {
                let tk = Tokenizer::load(bpe_path)?;
                // A small corpus can run out of merges before the asked-for size: fewer
                // tokens are fine (the model's vocabulary covers them), more are not.
                if tk.vocab_size() > *vocab_size {
                    bail!(
                        "{}: the tokenizer has {} tokens, more than the experiment's Bpe(vocab_size: {vocab_size})",
                        bpe_path.display(),
                        tk.vocab_size()
                    );
                }
                Ok(tk)
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Tokenizer::Gpt2(_) => "gpt2",
            Tokenizer::Bpe(_) => "bpe",
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Gpt2(_) => 50_257,
            Tokenizer::Bpe(tk) => tk.get_vocab_size(true),
        }
    }

    pub fn eot(&self) -> u32 {
        match self {
            Tokenizer::Gpt2(_) => 50_256,
            Tokenizer::Bpe(tk) => tk
                .token_to_id(END_OF_TEXT)
                .expect("checked when loaded or trained"),
        }
    }

    /// Token ids of `text` (no special tokens are recognised inside it).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Tokenizer::Gpt2(bpe) => Ok(bpe.encode_ordinary(text)),
            Tokenizer::Bpe(tk) => Ok(tk
                .encode(text, false)
                .map_err(|e| anyhow!("tokenizing: {e}"))?
                .get_ids()
                .to_vec()),
        }
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match self {
            Tokenizer::Gpt2(bpe) => bpe.decode(ids).map_err(|e| anyhow!("decoding: {e}")),
            Tokenizer::Bpe(tk) => tk.decode(ids, false).map_err(|e| anyhow!("decoding: {e}")),
        }
    }

    /// Identifies the exact vocabulary and merges: caches built with another tokenizer are
    /// refused.
    pub fn fingerprint(&self) -> String {
        match self {
            Tokenizer::Gpt2(_) => "gpt2-r50k_base".to_string(),
            Tokenizer::Bpe(tk) => {
                let json = tk.to_string(false).unwrap_or_default();
                format!(
                    "bpe{}-{:016x}",
                    self.vocab_size(),
                    crate::rng::fnv1a(json.as_bytes())
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::stories;

    #[test]
    fn gpt2_known_ids_and_exact_round_trip() {
        let tk = Tokenizer::gpt2().unwrap();
        assert_eq!(tk.encode("Hello world").unwrap(), vec![15496, 995]);
        assert_eq!(tk.eot(), 50256);
        assert_eq!(tk.vocab_size(), 50257);
        let text = "Lily’s cat said, “Hi!”\n\n  Tom ran.  ";
        assert_eq!(tk.decode(&tk.encode(text).unwrap()).unwrap(), text);
        // The separator inside text is ordinary text, not the special token.
        assert!(!tk.encode(END_OF_TEXT).unwrap().contains(&50256));
    }

    #[test]
    fn trained_bpe_round_trips_and_saves() {
        let corpus = stories::generate(300, 1);
        let tk = Tokenizer::train_bpe(corpus.iter().map(|s| s.text.as_str()), 400).unwrap();
        assert_eq!(tk.vocab_size(), 400);
        assert!(tk.eot() < 400);
        for text in [
            corpus[0].text.as_str(),
            "Zoë’s “new” word: xylophone!\n\nEnd.  ",
        ] {
            let ids = tk.encode(text).unwrap();
            assert!(!ids.contains(&tk.eot()));
            assert_eq!(tk.decode(&ids).unwrap(), text);
        }
        // Merges make it shorter than bytes.
        assert!(tk.encode(&corpus[0].text).unwrap().len() * 2 < corpus[0].text.len());

        let dir = std::env::temp_dir().join(format!("mla-lab-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokenizer.json");
        tk.save(&path).unwrap();
        let back = Tokenizer::load(&path).unwrap();
        assert_eq!(back.fingerprint(), tk.fingerprint());
        assert_eq!(
            back.encode(&corpus[1].text).unwrap(),
            tk.encode(&corpus[1].text).unwrap()
        );
        assert!(Tokenizer::for_config(&TokenizerConfig::Bpe { vocab_size: 500 }, &path).is_ok());
        let wrong =
            Tokenizer::for_config(&TokenizerConfig::Bpe { vocab_size: 399 }, &path).unwrap_err();
        assert!(wrong.to_string().contains("400 tokens"), "{wrong}");
        std::fs::write(&path, "{not json").unwrap();
        let err = Tokenizer::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("tokenizer.json: not a tokenizer file"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn training_is_deterministic() {
        let corpus = stories::generate(200, 2);
        let a = Tokenizer::train_bpe(corpus.iter().map(|s| s.text.as_str()), 350).unwrap();
        let b = Tokenizer::train_bpe(corpus.iter().map(|s| s.text.as_str()), 350).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
    }
}
