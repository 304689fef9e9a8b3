// The same calls with the right types compile, and path strings take any types.
include!("common.rs");

fn publish(args: CreateArgs) -> String {
    args.title
}

fn main() {
    let id: Option<String> = client_mutation(CREATE, CreateArgs { title: "t".into() });
    let post: Option<Option<String>> = client_query(GET, IdArgs { id: "x".into() });
    let untyped: Option<f64> = client_mutation("posts:anything", serde_json::json!({ "n": 1 }));
    register_internal_mutation(PUBLISH, publish);
    let _ = (id, post, untyped);
}
