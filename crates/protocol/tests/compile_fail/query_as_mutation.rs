// A query reference is refused where a mutation is expected.
include!("common.rs");

fn main() {
    let _ = client_mutation(GET, IdArgs { id: "x".into() });
}
