// An internal function's reference is refused by a client.
include!("common.rs");

fn main() {
    let _ = client_mutation(PUBLISH, CreateArgs { title: "t".into() });
}
