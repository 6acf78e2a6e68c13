//! Stories in, tokens out: the built-in story generator, the TinyStories loader, tokenizers,
//! the token cache, and burn's dataset and batcher over it.

pub mod dataset;
pub mod stories;
pub mod tinystories;
pub mod tokenizer;
pub mod tokens;

/// FNV-1a, 64 bit: a stable fingerprint of bytes (the same on every machine and version).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}
