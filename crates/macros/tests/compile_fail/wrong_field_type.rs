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
    // title is a String: a number is no title.
    let _ = Post {
        title: 5,
        author_id: Id::from_untyped(keel_values::DocumentId::new(
            keel_values::TableNumber(10001),
            [1; 16],
        )),
    };
}
