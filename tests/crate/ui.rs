//! Compile errors of the macros, one mistake per file under `ui/fail/`, each
//! with its reviewed `.stderr`. Regenerate with `TRYBUILD=overwrite` and
//! review the diff before committing.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*/*.rs");
}
