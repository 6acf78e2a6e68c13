//! One trainer per run folder. `train` holds an advisory lock on `<run>/train.lock` while it
//! works in the folder; a second process is refused with the first one's process id. The
//! operating system drops the lock when its holder ends, however it ends (`kill -9` included),
//! so a lock never outlives its process; the file stays behind with the last holder's id.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::RunFolder;

/// Held while a process trains into a run folder; dropping it lets the next one in.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
}

/// Another process holds the folder.
#[derive(Debug, thiserror::Error)]
#[error("{} is in use by another mla-lab ({holder}); wait for it to end, or stop it", dir.display())]
pub struct Busy {
    pub dir: PathBuf,
    /// `process 1234`, or `a process` when its id could not be read.
    pub holder: String,
}

impl RunFolder {
    pub fn lock_file(&self) -> PathBuf {
        self.dir.join("train.lock")
    }

    /// Takes the folder (which must exist) for this process, or says who has it. A folder
    /// whose own files are links ([`RunFolder::links`]) is refused first: nothing mla-lab
    /// writes into a run folder goes through a link to somewhere else.
    pub fn lock(&self) -> Result<FolderLock> {
        let links = self.links();
        if !links.is_empty() {
            let named: Vec<String> = links.iter().map(|l| l.display().to_string()).collect();
            bail!(
                "{}: holds links where mla-lab writes its own files ({}); a run folder's files \
                 must be its own: remove the links (or copy what they point to in their place)",
                self.dir.display(),
                named.join(", ")
            );
        }
        lock(&self.lock_file(), &self.dir)
    }

    /// The lock of this folder as a records entry: `.<name>.lock` beside it, so that it is
    /// never among the entry's files, and held while the entry is written.
    pub fn entry_lock_file(&self) -> PathBuf {
        self.dir.with_file_name(format!(".{}.lock", self.name()))
    }

    /// Takes the records entry (whose parent must exist) for this process, or says who is
    /// writing it: two tasks that race to write one run's records are refused, not merged.
    pub fn lock_entry(&self) -> Result<FolderLock> {
        lock(&self.entry_lock_file(), &self.dir)
    }
}

/// Takes the lock file `path` of `dir` for this process, or says who has it.
fn lock(path: &Path, dir: &Path) -> Result<FolderLock> {
    // Not truncated on open: the file holds the current holder's id until the lock is ours.
    // Never through a link: a planted one would have the id written wherever it points.
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    let mut file = options.open(path).map_err(|e| {
        let link = path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink());
        if link {
            anyhow::anyhow!(
                "{}: a link, not mla-lab's lock file; remove it (nothing was written through it)",
                path.display()
            )
        } else {
            anyhow::Error::new(e).context(format!("{}: cannot open", path.display()))
        }
    })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut id = String::new();
            let _ = file.read_to_string(&mut id);
            let holder = match id.trim().parse::<u32>() {
                Ok(pid) => format!("process {pid}"),
                Err(_) => "a process".to_string(),
            };
            return Err(Busy {
                dir: dir.to_path_buf(),
                holder,
            }
            .into());
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("{}: cannot lock", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(FolderLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_folder_is_refused_with_its_holder_and_free_again_once_released() {
        let scratch = crate::data::Scratch::new("lock");
        let folder = RunFolder::new(&scratch.0);
        let held = folder.lock().unwrap();
        // A second lock, even from this process, is a second open file: refused.
        let err = folder.lock().unwrap_err();
        let busy = err.downcast_ref::<Busy>().expect("a Busy error");
        assert_eq!(busy.holder, format!("process {}", std::process::id()));
        assert!(err.to_string().contains(&scratch.0.display().to_string()));
        drop(held);
        let again = folder.lock().unwrap();
        drop(again);
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_or_a_record_planted_as_a_link_is_refused_and_nothing_is_written_through_it() {
        let scratch = crate::data::Scratch::new("lock-link");
        let outside = scratch.0.join("outside.txt");
        std::fs::write(&outside, "keep me").unwrap();
        let folder = RunFolder::new(scratch.0.join("run"));
        std::fs::create_dir_all(&folder.dir).unwrap();
        std::os::unix::fs::symlink(&outside, folder.lock_file()).unwrap();
        let err = format!("{:#}", folder.lock().unwrap_err());
        assert!(err.contains("train.lock") && err.contains("links"), "{err}");
        // Even past the folder's check, the lock file itself is never opened through the link.
        let err = format!("{:#}", lock(&folder.lock_file(), &folder.dir).unwrap_err());
        assert!(err.contains("a link"), "{err}");
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep me");
        std::fs::remove_file(folder.lock_file()).unwrap();
        std::os::unix::fs::symlink(&outside, folder.metrics()).unwrap();
        let err = format!("{:#}", folder.lock().unwrap_err());
        assert!(err.contains("metrics.csv"), "{err}");
        std::fs::remove_file(folder.metrics()).unwrap();
        drop(folder.lock().unwrap());
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep me");
    }
}
