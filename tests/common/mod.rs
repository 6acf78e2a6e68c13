//! What the command-line tests share: an empty folder per test, and `mla-lab` run as a user
//! would, from a folder, with its exit code and output. Each test file uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// An empty folder for one test of `suite`, under the system temp folder.
pub fn fresh_dir(suite: &str, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mla-lab-{suite}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What one run of `mla-lab` did.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// `mla-lab ARGS` run from `cwd`.
pub fn mla_lab_in(cwd: &Path, args: &[&str]) -> Ran {
    let out = Command::new(env!("CARGO_BIN_EXE_mla-lab"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `mla-lab ARGS` run from the project's root, where the experiment files are.
pub fn mla_lab(args: &[&str]) -> Ran {
    mla_lab_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

/// A path as a command-line argument.
pub fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}
