//! The floors of `src/lib.rs`: each top-level module imports (by `crate::` path) only
//! modules on lower floors, and every top-level module is on a floor.
//!
//! The floors are read from the numbered list under `# Floors` in `src/lib.rs`'s
//! documentation (a module's floor is the first item that links it as [`name`]), so
//! the documentation and this check cannot drift apart. Test modules
//! (`#[cfg(test)] mod tests`) and comments are not counted.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The `pub mod NAME;` lines of lib.rs.
fn top_modules(lib: &str) -> Vec<String> {
    lib.lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .filter_map(|l| l.strip_suffix(';'))
        .map(str::to_string)
        .collect()
}

/// Module name -> floor, from the numbered `//! N. ...` items under `//! # Floors`.
fn floors(lib: &str, modules: &[String]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut floor = None;
    let mut in_floors = false;
    for line in lib.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.trim();
        if doc.starts_with("# ") {
            in_floors = doc == "# Floors";
            continue;
        }
        if !in_floors {
            continue;
        }
        if let Some((n, _)) = doc.split_once(". ") {
            if let Ok(n) = n.parse::<usize>() {
                floor = Some(n);
            }
        }
        let Some(f) = floor else { continue };
        for part in doc.split("[`").skip(1) {
            let Some((name, _)) = part.split_once("`]") else {
                continue;
            };
            if modules.iter().any(|m| m == name) {
                out.entry(name.to_string()).or_insert(f);
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file names as `crate::NAME`, outside comments and its
/// test module.
fn imports(text: &str) -> Vec<String> {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = Vec::new();
    for line in code.lines() {
        // Up to a comment (a `//` inside a string literal cuts the line short: harmless).
        let line = line.split("//").next().unwrap_or("");
        for part in line.split("crate::").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

#[test]
fn every_module_imports_only_lower_floors() {
    let lib = fs::read_to_string(src().join("lib.rs")).expect("read lib.rs");
    let modules = top_modules(&lib);
    assert!(modules.len() > 10, "pub mod lines not found in lib.rs");
    let floor = floors(&lib, &modules);
    let missing: Vec<_> = modules.iter().filter(|m| !floor.contains_key(*m)).collect();
    assert!(
        missing.is_empty(),
        "modules not on any floor of src/lib.rs's `# Floors` list: {missing:?}"
    );
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut violations = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src()).expect("under src").to_path_buf();
        let first = rel.iter().next().and_then(|s| s.to_str()).unwrap_or("");
        let top = first.strip_suffix(".rs").unwrap_or(first);
        let Some(&own) = floor.get(top) else {
            continue; // lib.rs, main.rs
        };
        let text = fs::read_to_string(&file).expect("read source");
        for name in imports(&text) {
            if name == top {
                continue;
            }
            if let Some(&theirs) = floor.get(&name) {
                if theirs >= own {
                    violations.push(format!(
                        "{}: {top} (floor {own}) imports crate::{name} (floor {theirs})",
                        rel.display()
                    ));
                }
            }
        }
    }
    violations.sort();
    violations.dedup();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_checker_sees_an_upward_import() {
    let lib = "//! # Floors\n//!\n//! 0. [`a`] and [`b`].\n//! 1. [`c`], using [`a::X`].\n\
               //!\n//! # Other\n//! 9. [`b`]\npub mod a;\npub mod b;\npub mod c;\n";
    let modules = top_modules(lib);
    let f = floors(lib, &modules);
    assert_eq!(f.get("a"), Some(&0));
    assert_eq!(f.get("b"), Some(&0));
    assert_eq!(f.get("c"), Some(&1));
    let text =
        "use crate::c::Y; // crate::b\n// crate::a\n#[cfg(test)]\nmod tests { use crate::b; }";
    assert_eq!(imports(text), vec!["c".to_string()]);
}
