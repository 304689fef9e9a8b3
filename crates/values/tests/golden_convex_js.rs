//! Golden tests against the official encoder: `convexToJson`/`jsonToConvex` from the `convex` npm
//! package (tests/node, convex@1.48.0), run with `node tests/node/values-golden.mjs`.
//!
//! 1. Every line JavaScript emits decodes with [`from_json`] and re-encodes with
//!    [`to_json_string`] to the identical bytes.
//! 2. Our encodings of a Rust-side value set survive `jsonToConvex` → `convexToJson` in
//!    JavaScript unchanged, byte for byte.
//! 3. Invalid encodings are rejected by both.
//!
//! Needs `node` and `tests/node/node_modules` (`scripts/test` installs both); fails otherwise.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use keel_values::{Object, Value, from_json, to_json_string};
use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::TestRunner;

fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/node")
}

/// Runs the golden script in `mode`, feeding `input` on stdin; returns its stdout lines.
fn run_node(mode: &str, input: &str) -> Vec<String> {
    let dir = node_dir();
    assert!(
        dir.join("node_modules/convex/package.json").exists(),
        "tests/node/node_modules is missing: run scripts/test (or `npm ci` in tests/node)"
    );
    let mut child = Command::new("node")
        .arg("values-golden.mjs")
        .arg(mode)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `node` ({e}): run scripts/test to install it"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write to node");
    let output = child.wait_with_output().expect("node output");
    assert!(
        output.status.success(),
        "node values-golden.mjs {mode} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn parse(line: &str) -> Value {
    let json: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: not JSON: {e}"));
    from_json(&json).unwrap_or_else(|e| panic!("{line}: rejected: {e}"))
}

#[test]
fn javascript_encodings_decode_and_reencode_byte_identically() {
    let lines = run_node("emit", "");
    assert!(
        lines.len() > 50,
        "expected the full value set, got {} lines",
        lines.len()
    );
    for line in &lines {
        assert_eq!(&to_json_string(&parse(line)), line);
    }
}

fn obj(fields: &[(&str, Value)]) -> Value {
    Value::Object(
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<Object>(),
    )
}

fn rust_values() -> Vec<Value> {
    let mut values = vec![Value::Null, Value::Boolean(true), Value::Boolean(false)];
    for i in [0, 1, -1, 42, i64::MAX, i64::MIN, 1 << 53, -(1 << 40) - 3] {
        values.push(Value::Int64(i));
    }
    for f in [
        0.0,
        -0.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1.0,
        0.1,
        1e21,
        1e-7,
        5e-324,
        f64::MAX,
        f64::MIN_POSITIVE,
        123456789.123,
        -1e-300,
        2.0f64.powi(60),
        1.0 / 3.0,
    ] {
        values.push(Value::Float64(f));
    }
    for s in [
        "",
        "plain",
        "\u{e9}\u{4e2d}\u{1F600}",
        "\u{0}\u{1}\u{1f}\u{7f}\"\\/\n\r\t\u{8}\u{c}",
        "\u{2028}",
    ] {
        values.push(Value::from(s));
    }
    values.push(Value::Bytes(vec![]));
    values.push(Value::Bytes((0..=255).collect()));
    let keys = obj(&[
        ("b", Value::Int64(1)),
        ("10", Value::Null),
        ("2", Value::Null),
        ("02", Value::Null),
        ("", Value::Null),
        ("~", Value::Null),
        ("_id", Value::from("x")),
    ]);
    values.push(keys.clone());
    values.push(Value::Array(vec![Value::Array(vec![]), obj(&[]), keys]));
    let all = Value::Array(values.clone());
    values.push(obj(&[("all", all)]));
    values
}

#[test]
fn our_encodings_survive_the_javascript_decoder_unchanged() {
    let ours: Vec<String> = rust_values().iter().map(to_json_string).collect();
    let theirs = run_node("recode", &(ours.join("\n") + "\n"));
    assert_eq!(theirs.len(), ours.len());
    for (mine, js) in ours.iter().zip(&theirs) {
        assert_eq!(js, &format!("OK {mine}"));
    }
}

/// Random values: any string, any float (NaN only in its canonical form, since JavaScript may
/// canonicalise NaN payloads), any int64, bytes, nested arrays and objects with valid names.
fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Boolean),
        any::<i64>().prop_map(Value::Int64),
        any::<f64>().prop_map(|f| Value::Float64(if f.is_nan() { f64::NAN } else { f })),
        (-1e6..1e6f64).prop_map(Value::Float64),
        any::<String>().prop_map(Value::String),
        "[\\x00-\\x1f\"\\\\/a\u{7f}-\u{a0}\u{2028}]{0,6}".prop_map(Value::String),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(Value::Bytes),
    ];
    let name = prop_oneof!["[ -#%-~][ -~]{0,6}", "", "[0-9]{1,11}"];
    leaf.prop_recursive(4, 40, 5, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(name.clone(), inner, 0..5).prop_map(Value::Object),
        ]
    })
}

#[test]
fn random_values_encode_byte_identically_to_javascript() {
    let mut runner = TestRunner::deterministic();
    let strategy = arb_value();
    let values: Vec<Value> = (0..400)
        .map(|_| strategy.new_tree(&mut runner).expect("value").current())
        .collect();
    let ours: Vec<String> = values.iter().map(to_json_string).collect();
    let theirs = run_node("recode", &(ours.join("\n") + "\n"));
    assert_eq!(theirs.len(), ours.len());
    for ((value, mine), js) in values.iter().zip(&ours).zip(&theirs) {
        assert_eq!(js, &format!("OK {mine}"), "{value:?}");
        assert_eq!(&parse(mine), value);
    }
}

#[test]
fn invalid_encodings_are_rejected_by_both() {
    let long_name = format!("{{\"{}\":1}}", "x".repeat(1025));
    let invalid = [
        r#"{"$integer":"AAAAAAAAAA=="}"#,
        r#"{"$integer":"AAAAAAAAAAAAAA=="}"#,
        r#"{"$integer":42}"#,
        r#"{"$float":"AAAAAAAA8D8="}"#,
        r#"{"$float":"AAAAAAAAAA=="}"#,
        r#"{"$bytes":"AQI"}"#,
        r#"{"$set":[]}"#,
        r#"{"$map":[]}"#,
        r#"{"$other":1}"#,
        r#"{"a":{"$integer":"AA==","b":1}}"#,
        r#"{"caf\u00e9":1}"#,
        r#"{"a\u0001":1}"#,
        long_name.as_str(),
    ];
    let theirs = run_node("recode", &(invalid.join("\n") + "\n"));
    assert_eq!(theirs.len(), invalid.len());
    for (line, js) in invalid.iter().zip(&theirs) {
        assert!(js.starts_with("ERR "), "JavaScript accepted {line}: {js}");
        let json: serde_json::Value = serde_json::from_str(line).expect("test input is JSON");
        assert!(
            from_json(&json).is_err(),
            "we accepted {line}; JavaScript said {js}"
        );
    }
}
