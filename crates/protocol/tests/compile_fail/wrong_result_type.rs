// A function registered under a reference must return the reference's result type.
include!("common.rs");

fn publish(_args: CreateArgs) -> u32 {
    1
}

fn main() {
    register_internal_mutation(PUBLISH, publish);
}
