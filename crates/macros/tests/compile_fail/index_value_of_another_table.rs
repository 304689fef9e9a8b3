use keel_macros::Table;
use keel_values::table::Id;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Table)]
#[keel(crate = "keel_values", table = "users")]
pub struct User {
    pub name: String,
}

#[derive(Serialize, Deserialize, Table)]
#[serde(rename_all = "camelCase")]
#[keel(crate = "keel_values", table = "posts", index(by_author = [author_id]))]
pub struct Post {
    pub title: String,
    pub author_id: Id<User>,
}

fn main() {
    let post_id: Id<Post> = Id::from_untyped(keel_values::DocumentId::new(
        keel_values::TableNumber(10001),
        [1; 16],
    ));
    // by_author ranges over Id<User>: an Id<Post> does not fit.
    let _ = Post::by_author.range().eq(post_id);
}
