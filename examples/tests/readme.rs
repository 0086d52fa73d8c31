//! The README's "What you write" program is `examples/readme.rs` byte for
//! byte, its `[dependencies]` name every crate the program uses, and run as
//! a newcomer runs it (no `RUST_LOG`) it prints the host's start line and
//! its first runs.

mod support;

use support::start_example_as_is;

/// The text of the first fenced block of `kind` after `heading` in the
/// README.
fn readme_block(heading: &str, kind: &str) -> String {
    let readme = include_str!("../../README.md");
    let section = readme
        .split_once(heading)
        .unwrap_or_else(|| panic!("the README has no `{heading}`"))
        .1;
    let fence = format!("```{kind}\n");
    let start = section
        .find(&fence)
        .unwrap_or_else(|| panic!("no ```{kind} block after `{heading}`"))
        + fence.len();
    let end = start + section[start..].find("```\n").expect("a closing fence");
    section[start..end].to_owned()
}

#[test]
fn the_readme_program_is_the_readme_example_byte_for_byte() {
    let program = readme_block("## What you write", "rust");
    assert_eq!(
        program,
        include_str!("../readme.rs"),
        "the README's program and examples/readme.rs differ: copy the example into the README"
    );
}

#[test]
fn the_readme_dependencies_name_every_crate_the_program_uses() {
    let dependencies = readme_block("## What you write", "toml");
    assert!(
        dependencies.starts_with("[dependencies]\n"),
        "{dependencies}"
    );
    let program = include_str!("../readme.rs");
    for (krate, path) in [
        ("hosted", "hosted::"),
        ("tokio", "tokio::"),
        ("tracing", "tracing::"),
        ("tracing-subscriber", "tracing_subscriber::"),
        ("anyhow", "anyhow::"),
    ] {
        assert!(program.contains(path), "the program no longer uses {krate}");
        assert!(
            dependencies
                .lines()
                .any(|line| line.starts_with(&format!("{krate} = "))),
            "the README's [dependencies] lack {krate}:\n{dependencies}"
        );
    }
    for feature in ["macros", "rt-multi-thread"] {
        assert!(
            dependencies.contains(&format!("\"{feature}\"")),
            "tokio's features in the README lack {feature}"
        );
    }
    assert!(
        dependencies.contains("\"env-filter\""),
        "the program's EnvFilter needs tracing-subscriber's env-filter feature"
    );
}

#[test]
fn the_readme_program_prints_the_start_line_and_its_runs() {
    let mut example = start_example_as_is("readme");
    example.wait_for("host started");
    // The lifecycle service starts before the host says it started; the
    // first heartbeat is due at the start, so it is on either side of it.
    assert!(
        example.output_so_far().contains("migrated"),
        "{}",
        example.output_so_far()
    );
    if !example.output_so_far().contains("alive n=1") {
        example.wait_for("alive n=1");
    }
    example.signal(libc::SIGTERM);
    let (status, output) = example.exit();
    assert_eq!(status.code(), Some(0), "{output}");
}
