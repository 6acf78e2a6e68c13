use super::*;

use crate::data::Scratch;

fn synthetic(count: usize, vocab: usize) -> DataConfig {
    DataConfig {
        source: DataSource::Synthetic { count, seed: 3 },
        tokenizer: TokenizerConfig::Bpe { vocab_size: vocab },
        val_fraction: 0.1,
    }
}

#[test]
fn split_is_by_story_deterministic_and_sized() {
    let a = split(1000, 0.05, 9).unwrap();
    assert_eq!(a, split(1000, 0.05, 9).unwrap());
    assert_ne!(a, split(1000, 0.05, 10).unwrap());
    assert_eq!(a.iter().filter(|v| **v).count(), 50);
    assert_eq!(split(3, 0.01, 1).unwrap().iter().filter(|v| **v).count(), 1);
    assert!(split(1, 0.5, 1).is_err());
}

#[test]
fn second_prepare_reuses_the_cache_and_a_changed_input_rebuilds() {
    let root = Scratch::new("tokens");
    let data = synthetic(300, 300);
    let first = prepare(&data, 1, &root.0).unwrap();
    assert!(!first.reused);
    assert_eq!(first.manifest.stories, 300);
    assert_eq!(first.manifest.val_stories, 30);
    assert_eq!(first.manifest.dtype, TokenWidth::U16);
    // Every story ends with <|endoftext|>: one per story in each split.
    let eots = |t: &[u32]| t.iter().filter(|&&x| x == first.tokenizer.eot()).count();
    assert_eq!(eots(&first.train), 270);
    assert_eq!(eots(&first.val), 30);
    // The ids decode back to the stories.
    let text = first.tokenizer.decode(&first.val).unwrap();
    assert!(text.contains("<|endoftext|>"));

    let second = prepare(&data, 1, &root.0).unwrap();
    assert!(second.reused);
    assert_eq!(second.dir, first.dir);
    assert_eq!(
        (second.train, second.val),
        (first.train.clone(), first.val.clone())
    );

    // Another generator seed or split seed is another cache.
    let other = DataConfig {
        source: DataSource::Synthetic {
            count: 300,
            seed: 4,
        },
        ..data.clone()
    };
    let third = prepare(&other, 1, &root.0).unwrap();
    assert!(!third.reused);
    assert_ne!(third.dir, first.dir);
    assert_ne!(prepare(&data, 2, &root.0).unwrap().dir, first.dir);
}

#[test]
fn a_tokenizer_that_does_not_match_is_refused_and_rebuilt() {
    let root = Scratch::new("tokens-mismatch");
    let data = synthetic(200, 300);
    let built = prepare(&data, 1, &root.0).unwrap();
    // Opening with another tokenizer is an error naming the manifest.
    let err = open(&built.dir, Tokenizer::gpt2().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("manifest.json") && err.contains("gpt2"),
        "{err}"
    );
    // A replaced tokenizer.json no longer matches: prepare rebuilds rather than mixing ids.
    let corpus = stories::generate(50, 8);
    let other = Tokenizer::train_bpe(corpus.iter().map(|s| s.text.as_str()), 300).unwrap();
    other.save(&built.dir.join("tokenizer.json")).unwrap();
    let again = prepare(&data, 1, &root.0).unwrap();
    assert!(!again.reused);
    assert_eq!(again.train, built.train);
}

#[test]
fn a_truncated_cache_is_detected() {
    let root = Scratch::new("tokens-corrupt");
    let data = synthetic(100, 300);
    let built = prepare(&data, 1, &root.0).unwrap();
    let bin = built.dir.join("train.bin");
    let bytes = std::fs::read(&bin).unwrap();
    std::fs::write(&bin, &bytes[..bytes.len() - 2]).unwrap();
    let tk = Tokenizer::load(&built.dir.join("tokenizer.json")).unwrap();
    let err = open(&built.dir, tk).unwrap_err().to_string();
    assert!(
        err.contains("train.bin") && err.contains("corrupt"),
        "{err}"
    );
}

#[test]
fn a_token_id_outside_the_vocabulary_is_refused_naming_the_file() {
    let root = Scratch::new("tokens-out-of-range");
    let data = synthetic(100, 300);
    let built = prepare(&data, 1, &root.0).unwrap();
    let vocab = built.tokenizer.vocab_size();
    let bin = built.dir.join("val.bin");
    let mut bytes = std::fs::read(&bin).unwrap();
    // The third id (u16) becomes the first one past the vocabulary.
    bytes[4..6].copy_from_slice(&(vocab as u16).to_le_bytes());
    std::fs::write(&bin, &bytes).unwrap();
    let tk = Tokenizer::load(&built.dir.join("tokenizer.json")).unwrap();
    let err = open(&built.dir, tk).unwrap_err().to_string();
    assert!(
        err.contains("val.bin")
            && err.contains(&format!("token 2 is id {vocab}"))
            && err.contains(&format!("0 to {}", vocab - 1)),
        "{err}"
    );
    // One below it is a real id.
    bytes[4..6].copy_from_slice(&(vocab as u16 - 1).to_le_bytes());
    std::fs::write(&bin, &bytes).unwrap();
    let tk = Tokenizer::load(&built.dir.join("tokenizer.json")).unwrap();
    assert_eq!(open(&built.dir, tk).unwrap().val[2], vocab as u32 - 1);
}

#[test]
fn tinystories_file_source_with_gpt2() {
    let root = Scratch::new("tokens-file");
    let file = root.0.join("s.txt");
    std::fs::write(
        &file,
        "One day, Tom ran.\n<|endoftext|>\nLily sang.\n<|endoftext|>\nThe end came.\n",
    )
    .unwrap();
    let data = DataConfig {
        source: DataSource::TinyStories { path: file.clone() },
        tokenizer: TokenizerConfig::Gpt2,
        val_fraction: 0.3,
    };
    let d = prepare(&data, 1, &root.0).unwrap();
    // 50,257 ids fit in u16.
    assert_eq!(d.manifest.dtype, TokenWidth::U16);
    assert_eq!(d.manifest.vocab_size, 50_257);
    assert_eq!(d.manifest.stories, 3);
    assert_eq!(d.manifest.val_stories, 1);
    assert!(prepare(&data, 1, &root.0).unwrap().reused);
    // Editing the file changes its fingerprint: a new cache.
    std::fs::write(&file, "Another story.\n<|endoftext|>\nAnd one more.\n").unwrap();
    let e = prepare(&data, 1, &root.0).unwrap();
    assert!(!e.reused);
    assert_ne!(e.dir, d.dir);
    // A missing file is an error naming it.
    std::fs::remove_file(&file).unwrap();
    let err = format!("{:#}", prepare(&data, 1, &root.0).unwrap_err());
    assert!(err.contains("s.txt"), "{err}");
}

#[test]
fn token_files_round_trip_in_both_widths() {
    let dir = Scratch::new("tokens-width");
    let ids = vec![0u32, 1, 65_535, 70_000, 3];
    write_tokens(&dir.0.join("a.bin"), TokenWidth::U32, &ids).unwrap();
    assert_eq!(std::fs::metadata(dir.0.join("a.bin")).unwrap().len(), 20);
    assert_eq!(
        read_tokens(&dir.0.join("a.bin"), TokenWidth::U32, 5, 70_001).unwrap(),
        ids
    );
    let small = vec![0u32, 1, 65_535, 3];
    write_tokens(&dir.0.join("b.bin"), TokenWidth::U16, &small).unwrap();
    assert_eq!(std::fs::metadata(dir.0.join("b.bin")).unwrap().len(), 8);
    assert_eq!(
        read_tokens(&dir.0.join("b.bin"), TokenWidth::U16, 4, 65_536).unwrap(),
        small
    );
    // A length that does not match the manifest is a corrupt cache.
    let err = read_tokens(&dir.0.join("b.bin"), TokenWidth::U32, 4, 65_536).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    // The manifest keeps the words it always had.
    assert_eq!(serde_json::to_string(&TokenWidth::U16).unwrap(), "\"u16\"");
    assert_eq!(TokenWidth::for_vocab(50_257), TokenWidth::U16);
    assert_eq!(TokenWidth::for_vocab(100_000), TokenWidth::U32);
}

#[test]
fn unigram_entropy_of_known_distributions() {
    assert_eq!(unigram_entropy(&[5; 10]), 0.0);
    let uniform: Vec<u32> = (0..1000).map(|i| i % 4).collect();
    assert!((unigram_entropy(&uniform) - 4f64.ln()).abs() < 1e-12);
    // p = (1/2, 1/4, 1/4): 1.5 bits.
    let e = unigram_entropy(&[0, 0, 1, 2]);
    assert!((e - 1.5 * 2f64.ln()).abs() < 1e-12);
}
