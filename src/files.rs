//! Every file the program writes is written whole or not at all: into a hidden temporary file
//! beside it (`.<name>.tmp`), then renamed into place, so a kill mid-write never leaves a
//! truncated file under the real name.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

/// The temporary a write of `path` goes through: `.<name>.tmp` in the same folder.
pub fn temporary(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy());
    path.with_file_name(format!(".{name}.tmp"))
}

/// Lets `write` fill the temporary of `path`, then renames it into place.
pub fn write_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temporary(path);
    write(&tmp).with_context(|| format!("{}: cannot write", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))
}

/// Writes `bytes` to `path`, synced to disk before the rename.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |tmp| {
        let mut f = std::fs::File::create(tmp)
            .with_context(|| format!("{}: cannot create", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(())
    })
}

/// Writes `value` as pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write(path, serde_json::to_string_pretty(value)?.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_new_name() {
        let dir = std::env::temp_dir().join(format!("mla-lab-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.json");
        write_json(&path, &[1, 2]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path)
                .unwrap()
                .replace(char::is_whitespace, ""),
            "[1,2]"
        );
        assert!(!temporary(&path).exists());
        let err = write_with(&path, |tmp| {
            std::fs::write(tmp, "half")?;
            anyhow::bail!("killed")
        })
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("a.json: cannot write"),
            "{err:#}"
        );
        assert_eq!(
            std::fs::read_to_string(&path)
                .unwrap()
                .replace(char::is_whitespace, ""),
            "[1,2]"
        );
        assert_eq!(temporary(&path), dir.join(".a.json.tmp"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
