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

/// Which top-level modules of its own crate each module may import (ARCHITECTURE.md,
/// "Layers"). Read bottom to top: a module imports only modules listed before it.
const KERNEL_LAYERS: &[(&str, &[&str])] = &[
    ("limits", &[]),
    ("secrets", &[]),
    ("room_id", &["secrets"]),
    ("vocabulary", &["limits", "room_id"]),
    ("seal", &["room_id", "secrets", "vocabulary"]),
    ("store", &["limits", "room_id", "vocabulary"]),
    ("identity", &["limits", "secrets", "vocabulary"]),
    ("search", &["limits", "room_id", "vocabulary"]),
    ("rooms", &["identity", "limits", "room_id", "seal", "search", "secrets", "store", "vocabulary"]),
    ("detect", &["limits"]),
    ("prompt", &["limits", "room_id", "rooms", "search", "vocabulary"]),
    ("boundary", &["detect", "limits", "rooms"]),
];

const SERVER_LAYERS: &[(&str, &[&str])] = &[
    ("config", &[]),
    ("limits", &["config"]),
    ("outbound", &[]),
    ("audit", &["limits"]),
    ("telemetry", &["config", "limits"]),
    ("limiter", &["config", "limits"]),
    ("listener", &["config", "limits"]),
    ("embeddings", &["config", "limits", "outbound"]),
    ("upstream", &["config", "limits", "outbound"]),
    ("error", &["embeddings", "limits"]),
    ("state", &["audit", "config", "embeddings", "limiter", "limits", "upstream"]),
    ("extract", &["audit", "error", "limiter", "limits", "state"]),
    ("http", &["audit", "config", "embeddings", "error", "extract", "limiter", "limits", "state"]),
    ("proxy", &["config", "embeddings", "error", "extract", "limits", "state", "upstream"]),
    ("mcp", &["audit", "error", "extract", "http", "limits", "state"]),
    ("router", &["error", "http", "limits", "mcp", "proxy", "state"]),
    (
        "app",
        &[
            "audit",
            "config",
            "embeddings",
            "error",
            "http",
            "limiter",
            "limits",
            "listener",
            "router",
            "state",
            "telemetry",
            "upstream",
        ],
    ),
    ("cli", &["app", "config", "limiter", "limits", "state", "telemetry"]),
];

/// Kernel modules the server's request handling may use: rooms and what they speak, never the
/// store or the sealing layer (only `app`, `cli` and `config` assemble those).
const SERVER_KERNEL_MODULES_FOR_HANDLERS: &[&str] =
    &["boundary", "detect", "identity", "limits", "prompt", "room_id", "rooms", "search", "secrets", "vocabulary"];

/// The top-level module a source file belongs to (`None` for crate roots).
fn top_module(source_root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(source_root).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?.trim_end_matches(".rs").to_owned();
    (!matches!(first.as_str(), "lib" | "main")).then_some(first)
}

/// The names `path_start::NAME` refers to in `text` (comments ignored).
fn referenced(text: &str, path_start: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(found) = rest.find(path_start) {
            let before = rest[..found].chars().last();
            rest = &rest[found + path_start.len()..];
            if before.is_some_and(|character| character.is_alphanumeric() || character == '_') {
                continue;
            }
            let name: String =
                rest.chars().take_while(|character| character.is_alphanumeric() || *character == '_').collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

/// Every import of a module of the same crate that the layer table does not allow.
fn layering_violations(crate_directory: &str, layers: &[(&str, &[&str])]) -> Vec<String> {
    let source_root = workspace_root().join(crate_directory).join("src");
    let mut files = Vec::new();
    rust_sources(&source_root, &mut files);
    let allowed: std::collections::HashMap<&str, &[&str]> = layers.iter().copied().collect();
    let mut violations = Vec::new();
    for path in files {
        let Some(module) = top_module(&source_root, &path) else { continue };
        let Some(permitted) = allowed.get(module.as_str()) else {
            violations.push(format!("{}: module {module} is not in the layer table", relative(&path)));
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        let mut imports = referenced(&text, "crate::");
        let is_top_level_file = path.parent() == Some(source_root.as_path());
        if is_top_level_file {
            imports.extend(referenced(&text, "super::"));
        }
        for import in imports {
            if import != module && !permitted.contains(&import.as_str()) && allowed.contains_key(import.as_str()) {
                violations.push(format!("{}: {module} may not import {import}", relative(&path)));
            }
        }
    }
    violations
}

/// The layer tables are in dependency order, so they have no cycle: each module may import
/// only modules listed before it.
fn assert_acyclic(layers: &[(&str, &[&str])]) {
    for (index, (module, imports)) in layers.iter().enumerate() {
        for import in *imports {
            let position = layers.iter().position(|(name, _)| name == import);
            assert!(
                position.is_some_and(|position| position < index),
                "{module} may import {import}, which is not listed before it: the table has a cycle or a typo"
            );
        }
    }
}

#[test]
fn modules_import_only_the_layers_below_them() {
    assert_acyclic(KERNEL_LAYERS);
    assert_acyclic(SERVER_LAYERS);
    let mut violations = layering_violations("crates/sealroom", KERNEL_LAYERS);
    violations.extend(layering_violations("crates/sealroom-server", SERVER_LAYERS));
    assert!(violations.is_empty(), "imports that break the layers of ARCHITECTURE.md:\n{}", violations.join("\n"));
}

#[test]
fn request_handling_reaches_state_only_through_rooms() {
    let source_root = workspace_root().join("crates/sealroom-server/src");
    let mut files = Vec::new();
    rust_sources(&source_root, &mut files);
    for path in files {
        let Some(module) = top_module(&source_root, &path) else { continue };
        if matches!(module.as_str(), "app" | "cli" | "config") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for kernel_module in referenced(&text, "sealroom::") {
            let is_module = kernel_module.chars().next().is_some_and(char::is_lowercase);
            assert!(
                !is_module || SERVER_KERNEL_MODULES_FOR_HANDLERS.contains(&kernel_module.as_str()),
                "{} uses sealroom::{kernel_module}; request handling reaches state only through rooms",
                relative(&path)
            );
        }
    }
}

/// STYLE rule 5: every limit is a named constant in a `limits.rs` (or a setting, with its
/// default in `config.rs`), where its reason is written. A constant named like a limit
/// (`…_MAX`, `…_MIN`, `…_SECS`, `…_MILLIS`) anywhere else fails (settings' defaults live in
/// `config/defaults.rs`).
#[test]
fn limits_live_in_limits_files() {
    for (path, text) in sources() {
        let name = relative(&path);
        if name.ends_with("/limits.rs") || name.ends_with("/config/defaults.rs") {
            continue;
        }
        let before_tests = text.split("#[cfg(test)]").next().unwrap_or("");
        for line in before_tests.lines() {
            let Some(rest) = line.trim_start().split("const ").nth(1).filter(|_| line.contains("const ")) else {
                continue;
            };
            let constant: String =
                rest.chars().take_while(|character| character.is_ascii_uppercase() || *character == '_').collect();
            // Histogram buckets are measured in seconds, but bound nothing.
            let not_a_limit = constant == "LATENCY_BUCKETS_SECS";
            let is_limit = ["_MAX", "_MIN", "_SECS", "_MILLIS"].iter().any(|suffix| constant.ends_with(suffix));
            let is_limit = is_limit && !not_a_limit;
            assert!(!is_limit, "{name}: {constant} is a limit; declare it in limits.rs with its reason");
        }
    }
}

/// A room's public operations are listed in one place (`rooms/mod.rs`): other files may add
/// crate-private helpers to `Room`, and public operations on handles, never public methods of
/// `Room` itself.
#[test]
fn a_rooms_public_operations_are_listed_in_one_place() {
    for (path, text) in sources() {
        let name = relative(&path);
        if name == "crates/sealroom/src/rooms/mod.rs" {
            continue;
        }
        let mut in_room_impl = false;
        for line in text.lines() {
            if line.starts_with("impl Room {") {
                in_room_impl = true;
            } else if line.starts_with('}') {
                in_room_impl = false;
            } else if in_room_impl {
                let public = line.starts_with("    pub fn ") || line.starts_with("    pub async fn ");
                assert!(!public, "{name}: a public method of Room outside rooms/mod.rs: {}", line.trim());
            }
        }
    }
}
