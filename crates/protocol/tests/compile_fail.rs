//! What typed function references refuse at compile time, checked by compiling small programs
//! that must fail (`trybuild`): a wrong argument type, a query reference where a mutation is
//! expected, an internal reference called by a client, and a function registered under a
//! reference whose result type is not its own.
//!
//! Each program calls through the exact bound the real callers declare
//! (`impl FunctionName<kind::Mutation, Public, A, R>` is `HttpClient::mutation`'s,
//! `LiveClient::mutation`'s …; the registry's `mutation` takes
//! `impl FunctionName<kind::Mutation, Public, A, R>` with `F: Fn(MutationCtx, A) -> … R`), so
//! that this crate's small dependency tree is all `trybuild` builds. The `.stderr` files hold
//! the expected messages; `TRYBUILD=overwrite cargo test -p keel-protocol --test compile_fail`
//! rewrites them after a deliberate change.

#[test]
fn typed_references_refuse_mismatches_at_compile_time() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/compile_fail/accepted.rs");
    cases.compile_fail("tests/compile_fail/wrong_argument_type.rs");
    cases.compile_fail("tests/compile_fail/query_as_mutation.rs");
    cases.compile_fail("tests/compile_fail/internal_from_client.rs");
    cases.compile_fail("tests/compile_fail/wrong_result_type.rs");
    cases.compile_fail("tests/compile_fail/malformed_path.rs");
}
