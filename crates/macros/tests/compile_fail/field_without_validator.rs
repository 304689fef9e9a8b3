use keel_macros::Table;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Table)]
#[keel(crate = "keel_values", table = "timers")]
pub struct Timer {
    // A Duration serializes, but no Convex validator stands for it.
    pub left: std::time::Duration,
}

fn main() {}
