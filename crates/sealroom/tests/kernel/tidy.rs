//! Tidy checks on the source tree: rules that are cheaper to enforce with a test than to
//! remember in review.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn rust_sources(directory: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_sources(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

/// Library and binary sources of every crate (not tests, benches or fuzz targets).
fn sources() -> Vec<(PathBuf, String)> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(workspace_root().join("crates")).unwrap() {
        let source = entry.unwrap().path().join("src");
        if source.is_dir() {
            rust_sources(&source, &mut paths);
        }
    }
    assert!(paths.len() > 10, "tidy found too few sources: {paths:?}");
    paths.into_iter().map(|path| (path.clone(), std::fs::read_to_string(&path).unwrap())).collect()
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace_root()).unwrap().display().to_string()
}

#[test]
fn every_module_says_what_it_is() {
    for (path, text) in sources() {
        assert!(text.starts_with("//!"), "{} must start with a //! module comment", relative(&path));
    }
}

#[test]
fn principals_are_built_from_claims_only_in_the_identity_module() {
    for (path, text) in sources() {
        let name = relative(&path);
        if name.starts_with("crates/sealroom/src/identity/") {
            continue;
        }
        assert!(!text.contains("Principal {"), "{name} builds a Principal literal");
        assert!(!text.contains("from_verified_claims"), "{name} calls the claims constructor");
    }
}

#[test]
fn the_server_never_assumes_an_identity() {
    for (path, text) in sources() {
        let name = relative(&path);
        if name.starts_with("crates/sealroom-server/") {
            assert!(
                !text.contains("dangerous_from_host_verified_identity"),
                "{name} must verify tokens, not assume identities"
            );
        }
    }
}

#[test]
fn no_unsafe_code_and_no_debug_output_in_libraries() {
    for (path, text) in sources() {
        let name = relative(&path);
        assert!(!text.contains("unsafe {") && !text.contains("unsafe fn"), "{name} uses unsafe");
        assert!(!text.contains("dbg!("), "{name} uses dbg!");
        let is_cli = name.ends_with("main.rs") || name.contains("/cli/");
        if !is_cli {
            assert!(
                !text.contains("println!(") && !text.contains("eprintln!("),
                "{name} prints outside the command line"
            );
        }
    }
    for crate_root in
        ["crates/sealroom/src/lib.rs", "crates/sealroom-server/src/lib.rs", "crates/sealroom-server/src/main.rs"]
    {
        let text = std::fs::read_to_string(workspace_root().join(crate_root)).unwrap();
        assert!(text.contains("#![forbid(unsafe_code)]"), "{crate_root} must forbid unsafe code");
    }
}

#[test]
fn no_unwrap_in_sources() {
    for (path, text) in sources() {
        assert!(
            !text.contains(".unwrap()"),
            "{} uses unwrap(); handle the error or state the invariant with expect",
            relative(&path)
        );
    }
}
