//! Every file the program writes is written whole or not at all: into a hidden temporary file
//! beside it (`.<name>.<pid>-<n>.tmp`, unique to the process and the write, so two processes
//! writing one name never share a temporary), then renamed into place, so a kill mid-write
//! never leaves a truncated file under the real name.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use serde::Serialize;

/// The temporary a write of `path` goes through: `.<name>.<pid>-<n>.tmp` in the same folder,
/// `n` counting this process's temporaries, so no two writes share one.
pub fn temporary(path: &Path) -> PathBuf {
    static WRITES: AtomicUsize = AtomicUsize::new(0);
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy());
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

/// Removes the temporaries of `path` that a killed process left behind (its process is gone),
/// where the system says which processes run (Linux's `/proc`); elsewhere they stay.
pub fn remove_stale(path: &Path) {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    }) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = file
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, n)| n.parse::<usize>().is_ok().then_some(pid))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let stale = e.path();
            let _ = if stale.is_dir() {
                std::fs::remove_dir_all(&stale)
            } else {
                std::fs::remove_file(&stale)
            };
        }
    }
}

/// Lets `write` fill the temporary of `path`, then renames it into place (temporaries of
/// `path` that killed processes left are removed first).
pub fn write_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    remove_stale(path);
    let tmp = temporary(path);
    let written = write(&tmp).and_then(|()| Ok(std::fs::rename(&tmp, path)?));
    if written.is_err() {
        // A temporary of a failed write is of no use to anyone (its name is never reused).
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("{}: cannot write", path.display()))
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

/// Puts the folder `new` in the place of `dir`: a rename where `dir` does not exist; else, where
/// the system can, both swapped in one step and the old one removed, so that `dir` is whole
/// at every moment (elsewhere the old one steps aside first, for as long as two renames take).
pub fn replace_dir(new: &Path, dir: &Path) -> Result<()> {
    let failed = || format!("{}: cannot replace", dir.display());
    if !dir.exists() {
        return std::fs::rename(new, dir).with_context(failed);
    }
    #[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        if renameat_with(CWD, new, CWD, dir, RenameFlags::EXCHANGE).is_ok() {
            // `new` now names the old folder.
            return std::fs::remove_dir_all(new).with_context(failed);
        }
    }
    let old = temporary(dir);
    std::fs::rename(dir, &old).with_context(failed)?;
    if let Err(e) = std::fs::rename(new, dir) {
        // The old one back in its place.
        let _ = std::fs::rename(&old, dir);
        return Err(e).with_context(failed);
    }
    std::fs::remove_dir_all(&old).with_context(failed)
}

/// Copies the file or folder `from` to `to`, folders with everything in them. A link is copied
/// as the link it is, never followed: what it points to, outside the tree, is not copied in.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let failed = || format!("{}: cannot copy to {}", from.display(), to.display());
    let meta = std::fs::symlink_metadata(from).with_context(failed)?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from).with_context(failed)?;
        #[cfg(unix)]
        return std::os::unix::fs::symlink(&target, to).with_context(failed);
        #[cfg(not(unix))]
        return Ok(());
    }
    if meta.is_dir() {
        std::fs::create_dir_all(to).with_context(failed)?;
        for e in std::fs::read_dir(from).with_context(failed)? {
            let e = e.with_context(failed)?;
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(|_| ()).with_context(failed)
    }
}

/// Writes `value` as pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write(path, serde_json::to_string_pretty(value)?.as_bytes())
}

/// A file of the checkout that tests read (`tests/golden`, `experiments/…`): under
/// `MLA_LAB_SOURCE_DIR` where set (a test binary copied to another machine with those files:
/// `scripts/gpu-study.sh`), else in the checkout the tests were built from.
#[cfg(test)]
pub(crate) fn source(path: &str) -> PathBuf {
    std::env::var_os("MLA_LAB_SOURCE_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join(path)
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
        let leftovers = |dir: &Path| std::fs::read_dir(dir).unwrap().count();
        assert_eq!(leftovers(&dir), 1, "no temporary left");
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
        assert_eq!(leftovers(&dir), 1, "no temporary left");
        // Unique to the process and the write.
        let (a, b) = (temporary(&path), temporary(&path));
        let pid = format!(".a.json.{}-", std::process::id());
        assert!(a.to_string_lossy().contains(&pid), "{}", a.display());
        assert_ne!(a, b);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temporaries_of_dead_processes_go_and_those_of_live_ones_stay() {
        let dir = std::env::temp_dir().join(format!("mla-lab-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.json");
        // A process id far above any the system hands out, and this live one's.
        let dead = dir.join(".a.json.4000000000-0.tmp");
        let live = temporary(&path);
        let other = dir.join(".b.json.4000000000-0.tmp");
        for f in [&dead, &live, &other] {
            std::fs::write(f, "half").unwrap();
        }
        write(&path, b"whole").unwrap();
        if Path::new("/proc/self").exists() {
            assert!(!dead.exists());
        }
        assert!(live.exists() && other.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_replaced_folder_holds_the_new_files_and_nothing_is_left_beside_it() {
        let dir = std::env::temp_dir().join(format!("mla-lab-replace-{}", std::process::id()));
        let (entry, new) = (dir.join("entry"), dir.join(".entry.new"));
        for (d, text) in [(&entry, "old"), (&new, "new")] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("a"), text).unwrap();
        }
        std::fs::write(entry.join("only-old"), "").unwrap();
        replace_dir(&new, &entry).unwrap();
        assert_eq!(std::fs::read_to_string(entry.join("a")).unwrap(), "new");
        assert!(!entry.join("only-old").exists());
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["entry"]);
        // Into a place that is free.
        std::fs::create_dir_all(&new).unwrap();
        replace_dir(&new, &dir.join("other")).unwrap();
        assert!(dir.join("other").is_dir() && !new.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_link_in_a_copied_tree_stays_a_link_and_its_target_is_not_copied() {
        let scratch = crate::data::Scratch::new("copy-links");
        let outside = scratch.0.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), "not for the records").unwrap();
        let tree = scratch.0.join("tree");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("mine.txt"), "mine").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("elsewhere")).unwrap();
        let copy = scratch.0.join("copy");
        copy_tree(&tree, &copy).unwrap();
        assert_eq!(
            std::fs::read_to_string(copy.join("mine.txt")).unwrap(),
            "mine"
        );
        let link = std::fs::symlink_metadata(copy.join("elsewhere")).unwrap();
        assert!(link.file_type().is_symlink());
        assert_eq!(std::fs::read_link(copy.join("elsewhere")).unwrap(), outside);
    }
}
