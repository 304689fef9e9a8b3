use keel_macros::Table;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Extra {
    pub tag: String,
}

#[derive(Serialize, Deserialize, Table)]
#[keel(crate = "keel_values", table = "notes")]
pub struct Note {
    pub title: String,
    #[serde(flatten)]
    pub extra: Extra,
}

fn main() {}
