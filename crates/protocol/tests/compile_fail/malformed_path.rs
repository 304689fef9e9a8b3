// A reference's path is checked when the constant is built.
use keel_protocol::QueryRef;

const LIST: QueryRef<(), ()> = QueryRef::new("posts list");

fn main() {
    let _ = LIST;
}
