//! Story-quality probes that need no judge, on held-out synthetic stories whose metadata is
//! known: each story is cut where its resolution begins, the model continues it (seeded), and
//! the continuations are scored.
//!
//! - consistency: among continuations that name anyone, the share naming only the story's own
//!   cast (its main character and companion), no one from another story; among those naming an
//!   object, the share naming only the story's own object; among those naming the own object
//!   with an attribute word before it, the share using the story's own attribute ("red kite");
//! - repetition: the share of word 3-grams of a continuation that repeat an earlier one in it;
//! - diversity: distinct-2 and distinct-3 over all continuations;
//! - grammar proxy: the share of complete sentences that end with `.`, `!` or `?` and use only
//!   words of the corpus vocabulary.

use std::collections::HashSet;

use anyhow::{Result, bail};

use crate::artifacts::records::{Example, ProbeReport, Share};
use crate::artifacts::run::Run;
use crate::data::config::DataSource;
use crate::data::stories::{self, Story, lexicon, split_sentences};
use crate::data::tokenizer::Tokenizer;
use crate::data::tokens;
use crate::experiment::Experiment;
use crate::infer::generate::{Limits, generate};
use crate::infer::sampling::{Sampler, SamplingConfig};
use crate::model::Gpt;

#[derive(Debug, Clone, Copy)]
pub struct ProbeOptions {
    /// Held-out stories to continue.
    pub stories: usize,
    pub max_new_tokens: usize,
    pub sampling: SamplingConfig,
    pub seed: u64,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            stories: 50,
            max_new_tokens: 64,
            sampling: SamplingConfig {
                temperature: 0.8,
                top_k: Some(40),
                top_p: Some(0.95),
            },
            seed: 1,
        }
    }
}

/// Lower-case words without punctuation.
pub fn words(text: &str) -> Vec<String> {
    cased_words(text).iter().map(|w| w.to_lowercase()).collect()
}

/// Words with their case (names are capitalised: "Sunny" the dog, not "sunny" weather).
fn cased_words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\'').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether `text_words` contain `phrase` as whole words (lower-case words for objects, cased
/// words for names).
fn names(text_words: &[String], phrase: &str) -> bool {
    let p = if phrase.starts_with(char::is_uppercase) {
        cased_words(phrase)
    } else {
        words(phrase)
    };
    !p.is_empty() && text_words.windows(p.len()).any(|w| w == p.as_slice())
}

/// The held-out stories of a synthetic experiment: the validation split, in id order.
pub fn held_out(exp: &Experiment, n: usize) -> Result<Vec<Story>> {
    let DataSource::Synthetic { count, seed } = exp.data.source else {
        bail!(
            "{}: probes need the built-in synthetic stories (their metadata says who and what each story is about); this run trained on {:?}",
            exp.name,
            exp.data.source
        );
    };
    let is_val = tokens::split(count, exp.data.val_fraction, exp.seed)?;
    Ok((0..count)
        .filter(|&i| is_val[i])
        .take(n)
        .map(|i| stories::story(seed, i))
        .collect())
}

/// How many held-out stories a synthetic experiment has (its validation split's); `None` for
/// other data.
pub fn held_out_count(exp: &Experiment) -> Option<usize> {
    let DataSource::Synthetic { count, .. } = exp.data.source else {
        return None;
    };
    let is_val = tokens::split(count, exp.data.val_fraction, exp.seed).ok()?;
    Some(is_val.iter().filter(|v| **v).count())
}

/// Every word the generator can write (from a sample of its stories).
pub fn corpus_vocabulary(seed: u64) -> HashSet<String> {
    (0..5000)
        .flat_map(|i| words(&stories::story(seed, i).text))
        .collect()
}

/// Continuations that named something, and those that named the story's own.
#[derive(Default)]
struct Tally {
    named: usize,
    kept: usize,
}

impl Tally {
    /// `None`: the continuation named nothing of the kind; else whether what it named was the
    /// story's own.
    fn add(&mut self, kept: Option<bool>) {
        if let Some(kept) = kept {
            self.named += 1;
            self.kept += kept as usize;
        }
    }

    fn share(&self) -> Share {
        Share::new(self.kept, self.named)
    }
}

/// Whether a continuation (its words with their case) names only the story's cast (main
/// character, companion), of the generator's names; `None` when it names no one.
fn cast_kept(story: &Story, cased: &[String]) -> Option<bool> {
    let named: Vec<&str> = lexicon::GIRLS
        .iter()
        .chain(lexicon::BOYS)
        .chain(lexicon::PET_NAMES)
        .copied()
        .filter(|n| names(cased, n))
        .collect();
    let cast = [story.meta.character.as_str(), story.meta.companion.as_str()];
    (!named.is_empty()).then(|| named.iter().all(|n| cast.contains(n)))
}

/// The story's own object noun: the longest of the generator's that its object ends with
/// ("teddy bear" for "red teddy bear").
fn own_object(story: &Story) -> &str {
    lexicon::OBJECTS
        .iter()
        .copied()
        .filter(|o| story.meta.object.ends_with(o))
        .max_by_key(|o| o.len())
        .unwrap_or(story.meta.object.as_str())
}

/// Whether a continuation (its words) names the own object and no other; `None` when it names
/// none.
fn object_kept(story: &Story, w: &[String]) -> Option<bool> {
    let own = own_object(story);
    let objects: Vec<&str> = lexicon::OBJECTS
        .iter()
        .copied()
        .filter(|o| names(w, o))
        // "bear" inside "teddy bear" is the same object.
        .filter(|o| !(own != *o && own.ends_with(o) && names(w, own)))
        .collect();
    (!objects.is_empty()).then(|| objects == [own])
}

/// Whether every attribute word written before the own object's noun is the story's own
/// ("red kite", not "green kite"); `None` when the continuation writes none.
fn attribute_kept(story: &Story, w: &[String]) -> Option<bool> {
    let own = own_object(story);
    let own_attribute = story.meta.object.strip_suffix(own).map(str::trim);
    let noun = words(own);
    let attributes: Vec<&str> = w
        .windows(noun.len() + 1)
        .filter(|g| g[1..] == noun[..] && lexicon::COLORS.contains(&g[0].as_str()))
        .map(|g| g[0].as_str())
        .collect();
    (!attributes.is_empty()).then(|| attributes.iter().all(|a| Some(*a) == own_attribute))
}

/// Sentences of a continuation that end properly and use only the corpus's words, of those
/// judged: a trailing fragment cut by the token limit is not judged.
fn grammar(text: &str, finished: bool, vocabulary: &HashSet<String>) -> Tally {
    let mut sents = split_sentences(text);
    if !finished
        && let Some(last) = sents.last()
        && !ends_properly(last)
    {
        sents.pop();
    }
    let mut tally = Tally::default();
    for s in sents {
        tally.add(Some(
            ends_properly(s) && words(s).iter().all(|w| vocabulary.contains(w)),
        ));
    }
    tally
}

/// Scores continuations; `items` are (story, continuation, stopped at end of text).
pub fn score(
    items: &[(Story, String, bool)],
    vocabulary: &HashSet<String>,
    examples: usize,
) -> ProbeReport {
    let (mut cast, mut object, mut attribute) =
        (Tally::default(), Tally::default(), Tally::default());
    let (mut rep, mut trigrams) = (0, 0);
    let mut d2: HashSet<Vec<String>> = HashSet::new();
    let mut d3: HashSet<Vec<String>> = HashSet::new();
    let (mut n2, mut n3) = (0, 0);
    let mut good = Tally::default();
    let mut total_words = 0;
    for (story, text, finished) in items {
        let w = words(text);
        total_words += w.len();
        cast.add(cast_kept(story, &cased_words(text)));
        object.add(object_kept(story, &w));
        attribute.add(attribute_kept(story, &w));
        // Repetition and diversity.
        let mut seen = HashSet::new();
        for g in w.windows(3) {
            trigrams += 1;
            if !seen.insert(g.to_vec()) {
                rep += 1;
            }
            d3.insert(g.to_vec());
            n3 += 1;
        }
        for g in w.windows(2) {
            d2.insert(g.to_vec());
            n2 += 1;
        }
        let g = grammar(text, *finished, vocabulary);
        good.named += g.named;
        good.kept += g.kept;
    }
    ProbeReport {
        stories: items.len(),
        character_consistency: cast.share(),
        object_consistency: object.share(),
        attribute_consistency: Some(attribute.share()),
        repetition_3gram: Share::new(rep, trigrams),
        distinct_2: Share::new(d2.len(), n2),
        distinct_3: Share::new(d3.len(), n3),
        grammar: good.share(),
        mean_words: total_words as f64 / items.len().max(1) as f64,
        examples: items
            .iter()
            .take(examples)
            .map(|(s, c, _)| Example {
                prompt: s.text[..s.meta.resolution_start].to_string(),
                continuation: c.clone(),
                character: s.meta.character.clone(),
                object: s.meta.object.clone(),
            })
            .collect(),
    }
}

fn ends_properly(sentence: &str) -> bool {
    let s = sentence.trim_end_matches(['"', '”']);
    s.ends_with(['.', '!', '?'])
}

/// The model's continuation of `prompt` (seeded by `opts.seed` and the story id), and whether
/// it ended by itself (end of text) rather than at the token limit.
pub fn continue_story(
    model: &Gpt,
    tokenizer: &Tokenizer,
    prompt: &str,
    id: usize,
    opts: &ProbeOptions,
) -> Result<(String, bool)> {
    // As in training, a story starts after `<|endoftext|>`.
    let mut ids = vec![tokenizer.eot()];
    ids.extend(tokenizer.encode(prompt)?);
    // Keep room for the continuation: drop the start of a prompt that is too long.
    let keep = model.context().saturating_sub(opts.max_new_tokens).max(1);
    if ids.len() > keep {
        ids.drain(..ids.len() - keep);
    }
    let mut sampler = Sampler::new(opts.sampling, opts.seed ^ id as u64);
    let limits = Limits {
        max_new_tokens: opts.max_new_tokens,
        stop: Some(tokenizer.eot()),
    };
    let out = generate(model, &ids, &mut sampler, limits, |_| {})?;
    let finished = out.len() < opts.max_new_tokens;
    Ok((tokenizer.decode(&out)?, finished))
}

/// Continues `opts.stories` held-out stories from where their resolution starts, and scores.
pub fn run(
    model: &Gpt,
    tokenizer: &Tokenizer,
    exp: &Experiment,
    opts: &ProbeOptions,
) -> Result<ProbeReport> {
    let stories = held_out(exp, opts.stories)?;
    let DataSource::Synthetic { seed, .. } = exp.data.source else {
        unreachable!("held_out checked the source")
    };
    let vocabulary = corpus_vocabulary(seed);
    let mut items = Vec::with_capacity(stories.len());
    for story in stories {
        let prompt = &story.text[..story.meta.resolution_start];
        let (text, finished) = continue_story(model, tokenizer, prompt, story.meta.id, opts)?;
        items.push((story, text, finished));
    }
    Ok(score(&items, &vocabulary, 5))
}

/// (beginning, continuation) pairs for the judge: the probes' held-out stories.
pub fn for_judge(run: &Run, o: &ProbeOptions, n: usize) -> Result<Vec<(String, String)>> {
    let mut out = vec![];
    for story in held_out(&run.experiment, n)? {
        let prompt = story.text[..story.meta.resolution_start].to_string();
        let (text, _) = continue_story(&run.model, &run.tokenizer, &prompt, story.meta.id, o)?;
        out.push((prompt, text));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: usize, continuation: &str, finished: bool) -> (Story, String, bool) {
        (stories::story(7, id), continuation.to_string(), finished)
    }

    #[test]
    fn the_stories_own_resolution_scores_as_consistent_and_grammatical() {
        let vocab = corpus_vocabulary(7);
        let items: Vec<_> = (0..30)
            .map(|i| {
                let s = stories::story(7, i);
                let rest = s.text[s.meta.resolution_start..].to_string();
                (s, rest, true)
            })
            .collect();
        let r = score(&items, &vocab, 2);
        assert_eq!(r.stories, 30);
        assert!(r.character_consistency.n >= 20, "{r:?}");
        assert!(r.character_consistency.value > 0.9, "{r:?}");
        assert!(r.object_consistency.value > 0.9, "{r:?}");
        // The generator writes the object with its one attribute throughout.
        let attribute = r.attribute_consistency.unwrap();
        assert!(attribute.n >= 10, "{r:?}");
        assert_eq!(attribute.value, 1.0, "{r:?}");
        assert_eq!(r.grammar.value, 1.0, "{r:?}");
        assert_eq!(r.examples.len(), 2);
    }

    #[test]
    fn swapped_names_and_objects_are_inconsistent() {
        let vocab = corpus_vocabulary(7);
        let s = stories::story(7, 3);
        let other = lexicon::GIRLS
            .iter()
            .chain(lexicon::BOYS)
            .find(|n| **n != s.meta.character)
            .unwrap();
        let own_obj = s.meta.object.split(' ').next_back().unwrap().to_string();
        let other_obj = lexicon::OBJECTS
            .iter()
            .find(|o| !s.meta.object.ends_with(*o) && !o.contains(' '))
            .unwrap();
        let items = vec![
            (s.clone(), format!("{other} found the {other_obj}."), true),
            (
                s.clone(),
                format!("{} found the {own_obj}.", s.meta.character),
                true,
            ),
            (s.clone(), "They went home.".into(), true),
        ];
        let r = score(&items, &vocab, 0);
        assert_eq!(r.character_consistency, Share { value: 0.5, n: 2 });
        assert_eq!(r.object_consistency, Share { value: 0.5, n: 2 });
        // Neither names an attribute before the own object.
        assert_eq!(r.attribute_consistency, Some(Share { value: 0.0, n: 0 }));
    }

    #[test]
    fn a_changed_attribute_is_inconsistent_and_a_bare_noun_is_not_counted() {
        let vocab = corpus_vocabulary(7);
        let s = stories::story(7, 3);
        let (own_attribute, noun) = s.meta.object.split_once(' ').unwrap();
        let other = lexicon::COLORS
            .iter()
            .find(|c| **c != own_attribute)
            .unwrap();
        let said = |text: String| (s.clone(), text, true);
        let items = vec![
            said(format!("She held the {} tight.", s.meta.object)),
            said(format!("She held the {other} {noun} tight.")),
            // The own attribute once and another once: not consistent.
            said(format!(
                "The {} was {other}. The {other} {noun} fell.",
                s.meta.object
            )),
            said(format!("She held the {noun} tight.")),
        ];
        let r = score(&items, &vocab, 0);
        assert_eq!(
            r.attribute_consistency,
            Some(Share {
                value: 1.0 / 3.0,
                n: 3
            })
        );
        // The noun alone keeps the object consistent.
        assert_eq!(r.object_consistency, Share { value: 1.0, n: 4 });
    }

    #[test]
    fn repetition_diversity_and_grammar_count_what_they_say() {
        let vocab = corpus_vocabulary(7);
        let r = score(
            &[item(0, "the cat sat the cat sat the cat sat", true)],
            &vocab,
            0,
        );
        // 7 trigrams, 3 distinct: 4 repeats.
        assert_eq!(
            r.repetition_3gram,
            Share {
                value: 4.0 / 7.0,
                n: 7
            }
        );
        assert_eq!(
            r.distinct_3,
            Share {
                value: 3.0 / 7.0,
                n: 7
            }
        );
        assert_eq!(
            r.distinct_2,
            Share {
                value: 3.0 / 8.0,
                n: 8
            }
        );
        // One fragment without an ending, judged because the text ended there.
        assert_eq!(r.grammar, Share { value: 0.0, n: 1 });
        // Unknown word fails; a fragment cut by the token limit is not judged.
        let r = score(
            &[item(0, "She was happy. Blorp was sad! And then", false)],
            &vocab,
            0,
        );
        assert_eq!(r.grammar, Share { value: 0.5, n: 2 });
    }

    #[test]
    fn held_out_stories_are_the_validation_split() {
        let exp = Experiment::load(crate::files::source("experiments/small/mha.ron")).unwrap();
        let s = held_out(&exp, 10).unwrap();
        let DataSource::Synthetic { count, .. } = exp.data.source else {
            panic!()
        };
        let is_val = tokens::split(count, exp.data.val_fraction, exp.seed).unwrap();
        assert_eq!(s.len(), 10);
        assert!(s.iter().all(|st| is_val[st.meta.id]));
    }
}
