//! Stories in, tokens out: the built-in story generator, the TinyStories loader, tokenizers,
//! the token cache, and burn's dataset and batcher over it.

pub mod stories;
