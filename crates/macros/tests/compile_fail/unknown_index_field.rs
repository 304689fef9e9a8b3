use keel_macros::Table;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Table)]
#[keel(crate = "keel_values", table = "notes", index(by_author = [author]))]
pub struct Note {
    pub title: String,
}

fn main() {}
