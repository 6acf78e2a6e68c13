//! The commit the binary is built from, for the records a run writes (`summary.json`): where
//! the binary was built, not where it happens to run.
//!
//! With the `tch` feature (burn's LibTorch backend): let our binaries, tests and benches find
//! libtorch at run time without `LD_LIBRARY_PATH`. torch-sys learns where the PyTorch wheel keeps
//! `libtorch*.so` and passes it on as `DEP_TCH_LIBTORCH_LIB`; link arguments from its own build
//! script reach only its own targets, so the rpath is set here. `--no-as-needed -ltorch` keeps
//! `libtorch_cuda.so` linked even though no symbol of ours names it, so CUDA devices are seen.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    git_revision();
    if std::env::var_os("CARGO_FEATURE_TCH").is_none() {
        return;
    }
    if let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.to_string_lossy());
    }
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
    }
}

/// Sets `MLA_LAB_GIT_REVISION` to `git rev-parse --short HEAD`, with `-dirty` when the sources
/// differ from that commit; leaves it unset outside a git checkout.
fn git_revision() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    // A commit moves HEAD's branch and rewrites the index; an edit touches src.
    for file in ["HEAD", "index"] {
        if let Some(path) = git(&["rev-parse", "--git-path", file]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=src");
    let Some(mut revision) = git(&["rev-parse", "--short", "HEAD"]) else {
        return;
    };
    let sources = ["src", "Cargo.toml", "Cargo.lock", "build.rs"];
    let clean = std::process::Command::new("git")
        .args(["diff", "--quiet", "HEAD", "--"])
        .args(sources)
        .status()
        .is_ok_and(|s| s.success());
    if !clean {
        revision += "-dirty";
    }
    println!("cargo:rustc-env=MLA_LAB_GIT_REVISION={revision}");
}
