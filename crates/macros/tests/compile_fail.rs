//! Typed tables refuse at compile time what would be a wrong document or a wrong id: each file
//! in `tests/compile_fail/` must fail to build, with the error in its `.stderr` beside it.
//! `tests/compile_pass/` is the same declarations used rightly, so that the failures are the
//! mistakes and nothing else.

#[test]
fn typed_tables_reject_wrong_types_at_compile_time() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/compile_pass/*.rs");
    cases.compile_fail("tests/compile_fail/*.rs");
}
