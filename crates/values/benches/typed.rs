//! The typed conversions next to plain `serde_json` on the same data, measured in the same run.
//!
//! Run with `cargo bench -p keel-values --bench typed` (a few seconds). Each line is keel's cost,
//! the baseline's and their ratio (below 1 means keel is cheaper); figures are the median of
//! three alternating rounds. Baselines: deserializing the equivalent `serde_json::Value` by
//! reference (`T::deserialize(&json)`, serde's cheapest in-memory path, which checks no Convex
//! rule) and `serde_json::to_value` (which builds no Convex value and checks no limit).
#![allow(clippy::print_stdout, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use keel_values::table::{Doc, FieldValidator, Table};
use keel_values::{DocumentId, Object, TableNumber, Validator, Value, obj};
use serde::{Deserialize, Serialize};

const MEASURE: Duration = Duration::from_millis(500);
const ROUNDS: usize = 3;

/// The arguments of a typical `posts:create`-like mutation, and a typical result row.
#[derive(Deserialize, Serialize)]
struct Post {
    title: String,
    body: String,
    #[serde(rename = "authorId")]
    author_id: String,
    likes: u32,
    score: f64,
    tags: Vec<String>,
}

/// A typed document of `posts`, as `#[derive(Table)]` would declare it.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct PostDoc {
    title: String,
    body: String,
    author_id: String,
    image_id: Option<String>,
}

impl FieldValidator for PostDoc {
    fn validator() -> Validator {
        Validator::object([
            ("title", String::field_validator()),
            ("body", String::field_validator()),
            ("authorId", String::field_validator()),
            ("imageId", <Option<String>>::field_validator()),
        ])
    }
}

impl Table for PostDoc {
    const NAME: &'static str = "posts";
    const INDEXES: &'static [(&'static str, &'static [&'static str])] = &[];
}

fn post_doc() -> PostDoc {
    PostDoc {
        title: "Hello, world".into(),
        body: "lorem ipsum ".repeat(16),
        author_id: "https://idp.example|user_2abc".into(),
        image_id: None,
    }
}

/// The fields as the app built them by hand before typed tables.
fn post_fields_by_hand(post: &PostDoc) -> Object {
    let mut fields = Object::new();
    if let Some(image_id) = &post.image_id {
        fields.insert("imageId".into(), image_id.as_str().into());
    }
    fields.insert("title".into(), post.title.as_str().into());
    fields.insert("body".into(), post.body.as_str().into());
    fields.insert("authorId".into(), post.author_id.as_str().into());
    fields
}

/// The fields read back by hand, as the app did before typed tables.
fn post_by_hand(fields: &Object) -> PostDoc {
    let text = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    PostDoc {
        title: text("title"),
        body: text("body"),
        author_id: text("authorId"),
        image_id: fields
            .get("imageId")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

fn post() -> Value {
    obj! {
        "title" => "Hello, world",
        "body" => "lorem ipsum ".repeat(16),
        "authorId" => "https://idp.example|user_2abc",
        "likes" => 42.0,
        "score" => 1.5,
        "tags" => Value::Array(vec!["rust".into(), "convex".into(), "keel".into()]),
    }
}

/// Nanoseconds per call of `f`, over about [`MEASURE`].
fn per_call(mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < MEASURE {
        for _ in 0..64 {
            f();
        }
        calls += 64;
    }
    started.elapsed().as_nanos() as f64 / calls as f64
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Measures `keel` and `baseline` alternately; prints one table row.
fn row(name: &str, baseline_name: &str, mut keel: impl FnMut(), mut baseline: impl FnMut()) {
    let (mut k, mut b) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        k.push(per_call(&mut keel));
        b.push(per_call(&mut baseline));
    }
    let (k, b) = (median(k), median(b));
    println!(
        "| {name} | {:.2} µs | {:.2} µs ({baseline_name}) | {:.2}× |",
        k / 1000.0,
        b / 1000.0,
        k / b
    );
}

fn main() {
    let args = post();
    // The same data as plain JSON, `likes` an integer as serde_json needs it for a u32.
    let args_json = serde_json::json!({
        "title": "Hello, world",
        "body": "lorem ipsum ".repeat(16),
        "authorId": "https://idp.example|user_2abc",
        "likes": 42,
        "score": 1.5,
        "tags": ["rust", "convex", "keel"],
    });
    let rows = Value::Array(vec![post(); 20]);
    let rows_json = serde_json::Value::Array(vec![args_json.clone(); 20]);
    let posts: Vec<Post> = keel_values::from_value(&rows).expect("rows decode");

    println!("# keel-values typed conversions\n");
    println!("| benchmark | keel | baseline | keel cost ÷ baseline |");
    println!("|---|---|---|---|");
    row(
        "decode arguments (`from_args`, 6 fields, extra fields checked)",
        "`Post::deserialize(&serde_json::Value)`",
        || {
            black_box(keel_values::from_args::<Post>(black_box(&args)).expect("decodes"));
        },
        || {
            black_box(Post::deserialize(black_box(&args_json)).expect("decodes"));
        },
    );
    row(
        "decode a result of 20 rows (`from_value`)",
        "`Vec::<Post>::deserialize(&serde_json::Value)`",
        || {
            black_box(keel_values::from_value::<Vec<Post>>(black_box(&rows)).expect("decodes"));
        },
        || {
            black_box(Vec::<Post>::deserialize(black_box(&rows_json)).expect("decodes"));
        },
    );
    row(
        "encode a result of 20 rows (`to_value`, limits checked)",
        "`serde_json::to_value`",
        || {
            black_box(keel_values::to_value(black_box(&posts)).expect("encodes"));
        },
        || {
            black_box(serde_json::to_value(black_box(&posts)).expect("encodes"));
        },
    );

    let doc = post_doc();
    let stored = keel_values::table::to_fields(&doc).expect("encodes");
    let id = DocumentId::new(TableNumber(10001), [7; 16]);
    row(
        "encode a typed document (`table::to_fields`, `None` fields left out)",
        "the same `Object` built field by field",
        || {
            black_box(keel_values::table::to_fields(black_box(&doc)).expect("encodes"));
        },
        || {
            black_box(post_fields_by_hand(black_box(&doc)));
        },
    );
    row(
        "decode a stored document (`Doc::from_parts`, strict; both from a copy of the fields)",
        "the same fields read by hand",
        || {
            let fields = black_box(&stored).clone();
            black_box(Doc::<PostDoc>::from_parts(id, 1.0, fields).expect("decodes"));
        },
        || {
            let fields = black_box(&stored).clone();
            black_box(post_by_hand(&fields));
        },
    );
}
