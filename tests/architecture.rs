//! ARCHITECTURE.md's rules, read from the code: every `use` line of `src/` outside its tests,
//! `super::` and `self::` included, resolved to the module it names. A layer imports only from
//! the layers below it, and no module imports, by any path, one that imports it back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers of ARCHITECTURE.md, top first: a top-level module may import from its own layer
/// and the ones after it.
const LAYERS: [&[&str]; 10] = [
    &["main", "cli"],
    &["study", "report", "info", "slurm"],
    &["eval"],
    &["train", "infer"],
    &["artifacts"],
    &["experiment"],
    &["model"],
    &["data"],
    &[
        "backend", "files", "rng", "progress", "options", "table", "compare",
    ],
    &["lib"],
];

/// `src/a/b.rs` and `src/a/b/mod.rs` are module `a::b`; `src/lib.rs` and `src/main.rs` are the
/// crate's roots, named `lib` and `main`.
fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// Every `.rs` file under `dir`, as (module, source).
fn sources(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            sources(root, &path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            let rel = path.strip_prefix(root).unwrap();
            out.insert(module_of(rel), std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// The `use` paths of `source` before its first `#[cfg(test)]`, braces expanded:
/// `use a::{b, c::d};` gives `a::b` and `a::c::d`.
fn use_paths(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap();
    let mut out = vec![];
    let mut rest = code;
    while let Some(at) = find_use(rest) {
        let stmt = &rest[at..];
        let end = stmt.find(';').unwrap();
        let body = stmt[..end].split_once("use ").unwrap().1;
        expand("", &body.split_whitespace().collect::<String>(), &mut out);
        rest = &stmt[end..];
    }
    out
}

/// The start of the next `use` statement at the start of a line (`pub use`, `pub(crate) use`).
fn find_use(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let is_use = ["use ", "pub use ", "pub(crate) use ", "pub(super) use "]
            .iter()
            .any(|p| t.starts_with(p));
        if is_use {
            return Some(offset + line.len() - t.len());
        }
        offset += line.len();
    }
    None
}

fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    match tree.find('{') {
        None => out.push(format!("{prefix}{tree}")),
        Some(open) => {
            let head = &tree[..open];
            let inner = &tree[open + 1..tree.rfind('}').unwrap()];
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&format!("{prefix}{head}"), &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            if start < inner.len() {
                expand(&format!("{prefix}{head}"), &inner[start..], out);
            }
        }
    }
}

/// The module a `use` path in module `from` names: the longest prefix that is a module of the
/// crate, or `None` for another crate's path.
fn resolve(from: &str, path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    // The module `self::` and relative paths start from: a `mod.rs` is its folder's module,
    // any other file its own.
    let mut base: Vec<&str> = if from == "lib" || from == "main" {
        vec![]
    } else {
        from.split("::").collect()
    };
    match segs.first().copied() {
        // The binary names the library by its crate name.
        Some("crate") | Some("mla_lab") => {
            base.clear();
            segs.remove(0);
        }
        Some("self") => {
            segs.remove(0);
        }
        Some("super") => {
            while segs.first() == Some(&"super") {
                segs.remove(0);
                base.pop();
            }
        }
        Some(first) => {
            let local = base
                .iter()
                .copied()
                .chain([first])
                .collect::<Vec<_>>()
                .join("::");
            if !modules.contains(&local) {
                return None;
            }
        }
        None => return None,
    }
    let mut best = base.join("::");
    let mut cur = base.clone();
    for s in segs {
        cur.push(s);
        let name = cur.join("::");
        if modules.contains(&name) {
            best = name;
        } else {
            break;
        }
    }
    Some(if best.is_empty() { "lib".into() } else { best })
}

/// Import edges between the crate's modules (`from -> to`, each once).
fn edges(files: &BTreeMap<String, String>) -> BTreeSet<(String, String)> {
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    let mut out = BTreeSet::new();
    for (from, source) in files {
        for path in use_paths(source) {
            if let Some(to) = resolve(from, &path, &modules)
                && &to != from
            {
                out.insert((from.clone(), to));
            }
        }
    }
    out
}

/// A cycle of imports, as the modules along it, or `None`.
fn find_cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges {
        next.entry(a).or_default().push(b);
    }
    // Depth-first, colouring each module: 1 while on the path, 2 when done.
    fn visit<'a>(
        m: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        colour: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        colour.insert(m, 1);
        path.push(m);
        for &n in next.get(m).into_iter().flatten() {
            match colour.get(n) {
                Some(1) => {
                    let at = path.iter().position(|p| *p == n).unwrap();
                    let mut cycle: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
                    cycle.push(n.to_string());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(n, next, colour, path) {
                        return Some(c);
                    }
                }
            }
        }
        path.pop();
        colour.insert(m, 2);
        None
    }
    let mut colour = BTreeMap::new();
    for m in next.keys().copied().collect::<Vec<_>>() {
        if !colour.contains_key(m)
            && let Some(c) = visit(m, &next, &mut colour, &mut vec![])
        {
            return Some(c);
        }
    }
    None
}

fn layer_of(module: &str) -> usize {
    let top = module.split("::").next().unwrap();
    LAYERS
        .iter()
        .position(|l| l.contains(&top))
        .unwrap_or_else(|| panic!("module {module} is in no layer of ARCHITECTURE.md"))
}

fn crate_sources() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    sources(&src, &src, &mut files);
    files
}

#[test]
fn the_model_core_imports_one_way() {
    let files = crate_sources();
    let model: BTreeSet<(String, String)> = edges(&files)
        .into_iter()
        .filter(|(a, b)| a.starts_with("model") && b.starts_with("model"))
        .collect();
    // The chain ARCHITECTURE.md draws, spot-checked: variants import the leaves, not the
    // enums above them.
    for (a, b) in [
        ("model::attention::mha", "model::slot"),
        ("model::attention::mha", "model::attention::common"),
        ("model::attention", "model::attention::mha"),
        ("model::cache", "model::attention"),
        ("model::gpt", "model::attention"),
    ] {
        assert!(model.contains(&(a.into(), b.into())), "{a} -> {b} not read");
    }
    assert!(
        !model
            .iter()
            .any(|(a, b)| a == "model::slot" || (a == "model::field" && b != a))
    );
    if let Some(cycle) = find_cycle(&model) {
        panic!("an import cycle in src/model: {}", cycle.join(" -> "));
    }
}

#[test]
fn no_layer_imports_from_a_layer_above_it() {
    let mut upward = vec![];
    for (a, b) in edges(&crate_sources()) {
        if layer_of(&b) < layer_of(&a) && a != "lib" && b != "lib" {
            upward.push(format!("{a} -> {b}"));
        }
    }
    assert!(
        upward.is_empty(),
        "imports from a layer above:\n{}",
        upward.join("\n")
    );
}

/// The check bites: a `super::` import planted in a leaf, pointing back up at the enum that
/// dispatches to the variants, closes a cycle, and the test names it.
#[test]
fn a_planted_super_cycle_is_caught() {
    let mut files = crate_sources();
    let slot = files.get_mut("model::slot").unwrap();
    slot.insert_str(0, "use super::attention::LayerCache;\n");
    let model: BTreeSet<(String, String)> = edges(&files)
        .into_iter()
        .filter(|(a, b)| a.starts_with("model") && b.starts_with("model"))
        .collect();
    let cycle = find_cycle(&model).expect("the planted import closes a cycle");
    assert!(
        cycle.contains(&"model::slot".to_string())
            && cycle.contains(&"model::attention".to_string()),
        "{cycle:?}"
    );
}

#[test]
fn use_lines_are_read_as_the_compiler_reads_them() {
    let mut paths = use_paths(
        "use a::{b, c::{d, e}};\npub use super::x::Y;\n  use self::z;\n#[cfg(test)]\nuse q;\n",
    );
    paths.sort();
    assert_eq!(
        paths,
        ["a::b", "a::c::d", "a::c::e", "self::z", "super::x::Y"]
    );
    let modules: BTreeSet<String> = [
        "model",
        "model::attention",
        "model::attention::mha",
        "model::slot",
    ]
    .map(String::from)
    .into();
    let r = |from: &str, p: &str| resolve(from, p, &modules);
    assert_eq!(
        r("model::attention::mha", "super::LayerCache").as_deref(),
        Some("model::attention")
    );
    assert_eq!(
        r("model::attention::mha", "crate::model::slot::CacheSlot").as_deref(),
        Some("model::slot")
    );
    assert_eq!(
        r("model::attention", "mha::Mha").as_deref(),
        Some("model::attention::mha")
    );
    assert_eq!(r("model::attention::mha", "burn::tensor::Tensor"), None);
}

#[test]
fn no_module_of_the_crate_imports_one_that_imports_it_back() {
    let all = edges(&crate_sources());
    assert!(
        all.len() > 100,
        "{} import edges: the reader lost them",
        all.len()
    );
    if let Some(cycle) = find_cycle(&all) {
        panic!("an import cycle: {}", cycle.join(" -> "));
    }
}

/// Every file of `src/` outside its tests, by the path the module map gives it: from `src/`
/// (`report/markdown.rs`) or from its folder's parent (`markdown/cells.rs`).
fn unlisted_files(map: &str, root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if path.is_dir() {
            if !rel.ends_with("tests") {
                unlisted_files(map, root, &path, out);
            }
            continue;
        }
        if !rel.ends_with(".rs") || rel.ends_with("tests.rs") {
            continue;
        }
        let parts: Vec<&str> = rel.split('/').collect();
        let short = parts[parts.len().saturating_sub(2)..].join("/");
        if !map.contains(&format!("`{rel}`")) && !map.contains(&format!("`{short}`")) {
            out.push(rel);
        }
    }
}

#[test]
fn architecture_md_names_every_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut missing = vec![];
    unlisted_files(&map, &root.join("src"), &root.join("src"), &mut missing);
    missing.sort();
    assert!(
        missing.is_empty(),
        "files of src/ that ARCHITECTURE.md does not name (by their path from src/, or from \
         their folder's parent): {missing:?}"
    );
    // It bites: a file the map does not name is found.
    let mut planted = vec![];
    unlisted_files("", &root.join("src"), &root.join("src"), &mut planted);
    assert!(planted.iter().any(|f| f == "model/attention/gta.rs"));
}
