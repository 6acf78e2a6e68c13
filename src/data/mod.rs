//! Stories in, tokens out: the built-in story generator, the TinyStories loader, tokenizers,
//! the token cache, and burn's dataset and batcher over it.

pub mod config;
pub mod dataset;
pub mod stories;
pub mod tinystories;
pub mod tokenizer;
pub mod tokens;

/// A scratch folder for test fixtures, emptied on creation and removed on drop.
#[cfg(test)]
pub(crate) struct Scratch(pub std::path::PathBuf);

#[cfg(test)]
impl Scratch {
    pub(crate) fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("mla-lab-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub(crate) fn write(&self, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

#[cfg(test)]
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
