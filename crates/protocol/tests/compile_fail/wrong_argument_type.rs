// A typed reference's argument type is the only one it takes.
include!("common.rs");

fn main() {
    let _ = client_mutation(CREATE, IdArgs { id: "x".into() });
}
