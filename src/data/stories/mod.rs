//! The built-in corpus: seeded, deterministic TinyStories-like stories for 3–5 year olds.
//!
//! A story is a setting (who, which object, which companion, where), then one of ten plots
//! (problem → attempt → resolution → optional moral), 4–10 sentences. The main character and
//! the object named in the setting come back by name in the resolution; [`StoryMeta`] records
//! them, the companion, the place, the plot and where the resolution starts, so later probes
//! can cut a story there and check what a model keeps consistent.
//!
//! Story `i` of seed `s` depends only on `(s, i)` (its own [SplitMix64](crate::rng::Rng) stream), so
//! the corpus is the same on every machine, and prefixes of larger corpora agree.

pub mod files;
pub mod lexicon;
mod plots;

use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use lexicon::*;
use plots::{PLOTS, Plot, Slot};

/// Version of the generated corpus: bump it whenever templates or word lists change, so
/// token caches built from the old corpus are not reused (the `corpus_is_pinned` test fails
/// as a reminder).
pub const GENERATOR_VERSION: u32 = 1;

/// Separator line between stories in the TinyStories text format.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// What a story is about, for consistency probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoryMeta {
    pub id: usize,
    pub plot: String,
    /// The main character's name.
    pub character: String,
    /// "she" or "he".
    pub pronoun: String,
    /// girl, boy, or an animal.
    pub kind: String,
    pub companion: String,
    /// friend, sister, dog, …
    pub relation: String,
    /// The object, as first written (e.g. "red kite").
    pub object: String,
    pub place: String,
    /// Byte offset in the story text where the resolution begins.
    pub resolution_start: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Story {
    pub text: String,
    pub meta: StoryMeta,
    /// A lower bound on the story's entropy, nats: `−ln p` summed over the draws the text
    /// shows ([`Visible`]).
    pub entropy: f64,
}

/// What the text of a story shows of the draws that made it, as `−ln p` per draw, so that
/// their sum bounds the story's entropy from below: `H(text) ≥ H(text | hidden draws)`, and
/// given the hidden draws each counted draw can be read off the text. Counted: the plot, the
/// template of every sentence that appears, every word drawn for a placeholder that appears
/// (with the pronouns' gender where the name lists do not overlap), and the paragraph layout.
/// Not counted (hidden or not always recoverable): the chattiness level, which optional
/// sentences were drawn, the setting's length, and the companion's kind and gender.
struct Visible {
    /// `−ln p` of each cast draw, by the placeholders that show it.
    cast: Vec<(&'static [&'static str], f64)>,
}

fn nats(n: usize) -> f64 {
    (n as f64).ln()
}

impl Visible {
    /// The entropy the text shows: the plot, the sentences' templates, the cast words whose
    /// placeholders appear in them, and the layout.
    fn entropy(&self, sentences: &[&Sentence]) -> f64 {
        let templates: f64 = sentences.iter().map(|s| nats(s.alternatives)).sum();
        let used = |keys: &[&str]| {
            sentences.iter().any(|s| {
                keys.iter()
                    .any(|k| s.template.contains(&format!("{{{k}}}")))
            })
        };
        let cast: f64 = self
            .cast
            .iter()
            .filter(|(keys, _)| used(keys))
            .map(|(_, n)| n)
            .sum();
        nats(PLOTS.len()) + templates + cast + nats(2)
    }
}

/// Everything a template can refer to.
struct Cast {
    name: &'static str,
    she: bool,
    kind: &'static str,
    trait_: &'static str,
    friend: &'static str,
    fshe: bool,
    rel: &'static str,
    fkind: &'static str,
    noun: &'static str,
    color: &'static str,
    obj: String,
    place: &'static str,
    spot: &'static str,
    spot2: &'static str,
    happy: &'static str,
    sad: &'static str,
    weather: &'static str,
    grown: &'static str,
    fear: &'static str,
    fix: &'static str,
    critter: &'static str,
    contest: &'static str,
}

impl Cast {
    fn draw(rng: &mut Rng) -> (Cast, Visible) {
        let she = rng.chance(0.5);
        let names = if she { GIRLS } else { BOYS };
        let name = rng.word(names);
        let kind = if rng.chance(0.55) {
            if she { "girl" } else { "boy" }
        } else {
            rng.word(KINDS)
        };
        // The companion's name, and how many names it was drawn among.
        let (friend, fshe, rel, fkind, friend_among) = if rng.chance(0.25) {
            let pet = rng.word(PETS);
            (
                rng.word(PET_NAMES),
                rng.chance(0.5),
                pet,
                pet,
                PET_NAMES.len(),
            )
        } else {
            let (rel, fixed) = *rng.pick(RELATIONS);
            let fshe = fixed.unwrap_or_else(|| rng.chance(0.5));
            let list = if fshe { GIRLS } else { BOYS };
            let mut friend = rng.word(list);
            while friend == name {
                friend = rng.word(list);
            }
            let fkind = if kind == "girl" || kind == "boy" {
                if fshe { "girl" } else { "boy" }
            } else {
                rng.word(KINDS)
            };
            // Drawn again while it equals the name: one fewer to choose from.
            let among = list.len() - usize::from(list.contains(&name));
            (friend, fshe, rel, fkind, among)
        };
        let noun = rng.word(OBJECTS);
        let color = rng.word(COLORS);
        let (place, spots) = *rng.pick(PLACES);
        let s1 = rng.below(3);
        let s2 = (s1 + 1 + rng.below(2)) % 3;
        let separate = GIRLS.iter().all(|g| !BOYS.contains(g));
        let kind_nats = if kind == "girl" || kind == "boy" {
            -(0.55f64.ln())
        } else {
            -(0.45f64.ln()) + nats(KINDS.len())
        };
        let visible = Visible {
            cast: vec![
                (
                    &["name"],
                    nats(names.len()) + if separate { nats(2) } else { 0.0 },
                ),
                (&["kind"], kind_nats),
                (&["trait"], nats(TRAITS.len())),
                (&["friend"], nats(friend_among)),
                (&["obj", "noun"], nats(OBJECTS.len())),
                (&["obj", "color"], nats(COLORS.len())),
                (&["place", "Place"], nats(PLACES.len())),
                (&["spot"], nats(3)),
                (&["spot2"], nats(2)),
                (&["happy"], nats(HAPPY.len())),
                (&["sad"], nats(SAD.len())),
                (&["weather"], nats(WEATHER.len())),
                (&["grown", "Grown"], nats(GROWNUPS.len())),
                (&["fear"], nats(FEARS.len())),
                (&["fix"], nats(FIXES.len())),
                (&["critter"], nats(CRITTERS.len())),
                (&["contest"], nats(CONTESTS.len())),
            ],
        };
        let cast = Cast {
            name,
            she,
            kind,
            trait_: rng.word(TRAITS),
            friend,
            fshe,
            rel,
            fkind,
            noun,
            color,
            obj: format!("{color} {noun}"),
            place,
            spot: spots[s1],
            spot2: spots[s2],
            happy: rng.word(HAPPY),
            sad: rng.word(SAD),
            weather: rng.word(WEATHER),
            grown: rng.word(GROWNUPS),
            fear: rng.word(FEARS),
            fix: rng.word(FIXES),
            critter: rng.word(CRITTERS),
            contest: rng.word(CONTESTS),
        };
        (cast, visible)
    }

    fn lookup(&self, key: &str) -> String {
        let pro = |she: bool, f: &'static str, m: &'static str| if she { f } else { m };
        match key {
            "name" => self.name.into(),
            "He" => pro(self.she, "She", "He").into(),
            "he" => pro(self.she, "she", "he").into(),
            "him" => pro(self.she, "her", "him").into(),
            "His" => pro(self.she, "Her", "His").into(),
            "his" => pro(self.she, "her", "his").into(),
            "kind" => self.kind.into(),
            "trait" => self.trait_.into(),
            "friend" => self.friend.into(),
            "fHe" => pro(self.fshe, "She", "He").into(),
            "fhe" => pro(self.fshe, "she", "he").into(),
            "fhim" => pro(self.fshe, "her", "him").into(),
            "fhis" => pro(self.fshe, "her", "his").into(),
            "rel" => self.rel.into(),
            "fkind" => self.fkind.into(),
            "obj" => self.obj.clone(),
            "noun" => self.noun.into(),
            "color" => self.color.into(),
            "place" => self.place.into(),
            "Place" => capitalize(self.place),
            "spot" => self.spot.into(),
            "spot2" => self.spot2.into(),
            "happy" => self.happy.into(),
            "sad" => self.sad.into(),
            "weather" => self.weather.into(),
            "grown" => self.grown.into(),
            "Grown" => capitalize(self.grown),
            "fear" => self.fear.into(),
            "fix" => self.fix.into(),
            "critter" => self.critter.into(),
            "contest" => self.contest.into(),
            other => panic!("story template uses unknown placeholder {{{other}}}"),
        }
    }

    /// Fills `{key}` placeholders, then fixes `a` → `an` before vowels.
    fn fill(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len() + 32);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').expect("unclosed placeholder") + open;
            out.push_str(&self.lookup(&rest[open + 1..close]));
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        fix_articles(&out)
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `a apple` → `an apple`, `A orange` → `An orange`.
fn fix_articles(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let words: Vec<&str> = s.split(' ').collect();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let next_vowel = words
            .get(i + 1)
            .and_then(|n| n.chars().next())
            .is_some_and(|c| "aeiouAEIOU".contains(c));
        match *w {
            "a" if next_vowel => out.push_str("an"),
            "A" if next_vowel => out.push_str("An"),
            _ => out.push_str(w),
        }
    }
    out
}

/// Splits text into sentences: a sentence ends at `.`, `!` or `?` (with any closing quote)
/// followed by whitespace or the end. The one definition used by the generator's length
/// limits and by later grammar probes.
pub fn split_sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if matches!(bytes[i], b'.' | b'!' | b'?') {
            let mut end = i + 1;
            while end < bytes.len() && (bytes[end] == b'"' || text[end..].starts_with('”')) {
                end += if bytes[end] == b'"' {
                    1
                } else {
                    '”'.len_utf8()
                };
            }
            if end == bytes.len() || bytes[end].is_ascii_whitespace() {
                let s = text[start..end].trim();
                if !s.is_empty() {
                    out.push(s);
                }
                start = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    let tail = text[start..].trim();
    if !tail.is_empty() {
        out.push(tail);
    }
    out
}

/// One sentence of a story and the template it was drawn from.
struct Sentence {
    required: bool,
    text: String,
    template: &'static str,
    /// How many templates it was drawn among.
    alternatives: usize,
}

impl Sentence {
    fn draw(rng: &mut Rng, cast: &Cast, required: bool, alts: &'static [&'static str]) -> Self {
        let template = rng.word(alts);
        Sentence {
            required,
            text: cast.fill(template),
            template,
            alternatives: alts.len(),
        }
    }
}

/// The sentences chosen for one section of a story.
type Section = Vec<Sentence>;

fn choose(rng: &mut Rng, cast: &Cast, slots: &[Slot], keep_optional: f64) -> Section {
    let mut out = Vec::new();
    for Slot(required, alts) in slots {
        let sentence = Sentence::draw(rng, cast, *required, alts);
        if *required || rng.chance(keep_optional) {
            out.push(sentence);
        }
    }
    out
}

fn count(section: &Section) -> usize {
    section.iter().map(|s| split_sentences(&s.text).len()).sum()
}

/// The most sentences a story has.
const MAX_SENTENCES: usize = 10;

/// Drops optional sentences from `parts`, from the first part's last to the last part's
/// first, until they and `kept` have at most `most` sentences; whether they then do.
fn drop_optional(parts: [&mut Section; 4], kept: &Section, most: usize) -> bool {
    let total =
        |parts: &[&mut Section; 4]| parts.iter().map(|s| count(s)).sum::<usize>() + count(kept);
    for i in 0..parts.len() {
        while total(&parts) > most {
            match parts[i].iter().rposition(|s| !s.required) {
                Some(j) => {
                    parts[i].remove(j);
                }
                None => break,
            }
        }
    }
    total(&parts) <= most
}

/// Story `id` of the corpus seeded with `seed`.
pub fn story(seed: u64, id: usize) -> Story {
    let mut rng = Rng::for_item(seed, id as u64);
    let (cast, visible) = Cast::draw(&mut rng);
    let plot: &Plot = rng.pick(PLOTS);
    // How chatty this story is: the chance of keeping each optional sentence.
    let keep = 0.15 + 0.8 * (rng.below(1000) as f64 / 1000.0);

    let short_setting = if plot.meets_companion {
        plots::SHORT_SETTING
    } else {
        plots::SHORT_SETTING_WITH_COMPANION
    };
    let mut setting: Section = if rng.chance(0.2) {
        vec![Sentence::draw(&mut rng, &cast, true, short_setting)]
    } else {
        let mut s = vec![
            Sentence::draw(&mut rng, &cast, true, plots::INTRO),
            Sentence::draw(&mut rng, &cast, true, plots::OBJECT),
        ];
        if !plot.meets_companion {
            s.push(Sentence::draw(&mut rng, &cast, true, plots::COMPANION));
        }
        s.push(Sentence::draw(&mut rng, &cast, true, plots::GO_TO_PLACE));
        if rng.chance(keep * 0.5) {
            s.push(Sentence::draw(&mut rng, &cast, false, plots::PLACE_DETAIL));
        }
        s
    };
    let mut problem = choose(&mut rng, &cast, plot.problem, keep);
    let mut attempt = choose(&mut rng, &cast, plot.attempt, keep);
    let resolution = choose(&mut rng, &cast, plot.resolution, keep);
    let mut moral = choose(&mut rng, &cast, plot.moral, keep);

    // At most 10 sentences: drop optional ones, least needed first.
    let parts = [&mut moral, &mut setting, &mut attempt, &mut problem];
    if !drop_optional(parts, &resolution, MAX_SENTENCES) {
        // Still too long: fold the setting into one sentence.
        setting = vec![Sentence::draw(&mut rng, &cast, true, short_setting)];
    }

    let join = |s: &Section| {
        s.iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let paragraphs = rng.chance(0.5);
    let sep = if paragraphs { "\n\n" } else { " " };
    let mut text = join(&setting);
    let middle = [join(&problem), join(&attempt)].join(" ");
    text.push_str(sep);
    text.push_str(&middle);
    text.push_str(sep);
    let resolution_start = text.len();
    text.push_str(&join(&resolution));
    if !moral.is_empty() {
        text.push(' ');
        text.push_str(&join(&moral));
    }

    let meta = StoryMeta {
        id,
        plot: plot.name.to_string(),
        character: cast.name.to_string(),
        pronoun: if cast.she { "she" } else { "he" }.to_string(),
        kind: cast.kind.to_string(),
        companion: cast.friend.to_string(),
        relation: cast.rel.to_string(),
        object: cast.obj.clone(),
        place: cast.place.to_string(),
        resolution_start,
    };
    let shown: Vec<&Sentence> = [&setting, &problem, &attempt, &resolution, &moral]
        .into_iter()
        .flatten()
        .collect();
    Story {
        text,
        meta,
        entropy: visible.entropy(&shown),
    }
}

/// `count` stories from `seed`, in order.
pub fn generate(count: usize, seed: u64) -> Vec<Story> {
    (0..count).map(|i| story(seed, i)).collect()
}

/// [`generate`], with a `stories` progress bar on stderr (the command line, the token cache).
pub fn generate_shown(count: usize, seed: u64) -> Vec<Story> {
    let progress = crate::progress::Progress::new("stories", count as u64);
    let stories = (0..count)
        .map(|i| {
            if i % 1000 == 999 {
                progress.inc(1000);
            }
            story(seed, i)
        })
        .collect();
    progress.finish(&format!(
        "generated {count} synthetic stories (seed {seed})"
    ));
    stories
}

#[cfg(test)]
mod tests;
