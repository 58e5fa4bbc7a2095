//! Compile-time behaviour of `#[worker]`: every misuse in `tests/ui/fail/` must fail with the
//! message in the `.stderr` beside it, and every file in `tests/ui/pass/` must compile.
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test --test ui`, then read
//! every changed `.stderr`: the error must sit on the offending token and say the fix.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/**/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
