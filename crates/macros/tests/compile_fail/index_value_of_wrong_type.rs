use keel_macros::Table;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Table)]
#[keel(crate = "keel_values", table = "notes", index(by_title = [title]))]
pub struct Note {
    pub title: String,
}

fn main() {
    // by_title ranges over a String: a number does not fit.
    let _ = Note::by_title.range().eq(5);
}
