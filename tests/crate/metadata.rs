//! The published crates say true things about themselves: the license
//! texts they name ship inside each crate, each has its own README,
//! keywords and categories for its registry page, and a `rust-version`
//! no lower than its dependencies'.

use std::path::Path;

/// The crates published to the registry, by folder.
const PUBLISHED: [&str; 5] = ["runtime", "macros", "spec", "postgres", "dashboard"];

fn manifest(dir: &Path) -> toml::Table {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).expect("read Cargo.toml");
    text.parse().expect("valid TOML")
}

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn each_published_crate_ships_its_license_texts_and_readme_and_says_what_it_is() {
    let workspace = manifest(root());
    let license = workspace["workspace"]["package"]["license"]
        .as_str()
        .expect("a workspace license");
    assert_eq!(license, "MIT OR Apache-2.0");
    for folder in PUBLISHED {
        let dir = root().join(folder);
        for text in ["LICENSE-MIT", "LICENSE-APACHE"] {
            let content = std::fs::read_to_string(dir.join(text))
                .unwrap_or_else(|e| panic!("{folder}/{text}: {e}"));
            assert!(content.len() > 500, "{folder}/{text} is not a license text");
        }
        let package = manifest(&dir)["package"].as_table().unwrap().clone();
        let readme = package
            .get("readme")
            .and_then(|r| r.as_str())
            .unwrap_or_else(|| panic!("{folder} names no readme"));
        assert!(dir.join(readme).is_file(), "{folder}: {readme} is missing");
        for key in ["keywords", "categories"] {
            let list = package
                .get(key)
                .and_then(|v| v.as_array())
                .unwrap_or_else(|| panic!("{folder} has no {key}"));
            assert!(
                !list.is_empty() && list.len() <= 5,
                "{folder}: {key} {list:?}"
            );
        }
        assert!(package.contains_key("description"), "{folder}");
    }
}

/// `1.85` as (1, 85).
fn version(text: &str) -> (u64, u64) {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().expect("a number"));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn each_published_crate_claims_a_rust_version_its_dependencies_allow() {
    let output = std::process::Command::new(env!("CARGO"))
        // Not `--offline`: the metadata of every platform's dependencies
        // (an Android-only crate of chrono's among them) is read, and a
        // build for this platform alone has not downloaded those.
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(root())
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let by_id = |id: &str| packages.iter().find(|p| p["id"] == id).unwrap();
    let nodes = meta["resolve"]["nodes"].as_array().unwrap();
    let node = |id: &str| nodes.iter().find(|n| n["id"] == id).unwrap();
    for folder in PUBLISHED {
        let name = manifest(&root().join(folder))["package"]["name"]
            .as_str()
            .unwrap()
            .to_owned();
        let me = packages
            .iter()
            .find(|p| p["name"] == name.as_str())
            .unwrap();
        let claimed = version(me["rust_version"].as_str().expect("a rust-version"));
        // Every crate it builds with: its dependencies but not the
        // dev-dependencies, at any depth.
        let mut stack = vec![me["id"].as_str().unwrap().to_owned()];
        let mut seen = std::collections::HashSet::new();
        while let Some(id) = stack.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            for dep in node(&id)["deps"].as_array().unwrap() {
                let normal = dep["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null() || k["kind"] == "build");
                if normal {
                    stack.push(dep["pkg"].as_str().unwrap().to_owned());
                }
            }
            let package = by_id(&id);
            if let Some(needed) = package["rust_version"].as_str() {
                assert!(
                    version(needed) <= claimed,
                    "{name} claims rust-version {claimed:?}, but its dependency {} needs {needed}",
                    package["name"]
                );
            }
        }
    }
}
