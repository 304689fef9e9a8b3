//! Convex JSON decoding: every rejection with its code and path, and property tests (decoding
//! arbitrary JSON never panics; encode → decode is the identity).

use keel_values::{
    Object, Value, ValueError, from_json, from_json_at, to_clean_json, to_json, to_json_string,
};
use proptest::prelude::*;
use serde_json::{Value as Json, json};

fn rejects(j: Json, code: &str, needle: &str) {
    let err = from_json(&j).expect_err(&format!("{j} must be rejected"));
    assert_eq!(err.code(), code, "{err}");
    assert!(err.to_string().starts_with(code), "{err}");
    assert!(
        err.to_string().contains(needle),
        "{err:?} should mention {needle:?}"
    );
}

#[test]
fn special_encodings_decode() {
    assert_eq!(
        from_json(&json!({"$integer": "KgAAAAAAAAA="})).unwrap(),
        Value::Int64(42)
    );
    assert_eq!(
        from_json(&json!({"$integer": "//////////8="})).unwrap(),
        Value::Int64(-1)
    );
    let nan = from_json(&json!({"$float": "AAAAAAAA+H8="})).unwrap();
    assert!(matches!(nan, Value::Float64(f) if f.is_nan()));
    let neg_zero = from_json(&json!({"$float": "AAAAAAAAAIA="})).unwrap();
    assert!(matches!(neg_zero, Value::Float64(f) if f == 0.0 && f.is_sign_negative()));
    assert_eq!(
        from_json(&json!({"$bytes": ""})).unwrap(),
        Value::Bytes(vec![])
    );
    assert_eq!(
        from_json(&json!({"$bytes": "AQID"})).unwrap(),
        Value::Bytes(vec![1, 2, 3])
    );
    assert_eq!(from_json(&json!(1)).unwrap(), Value::Float64(1.0));
    assert_eq!(
        from_json(&json!(u64::MAX)).unwrap(),
        Value::Float64(u64::MAX as f64)
    );
}

#[test]
fn bad_integers_are_rejected_with_their_path() {
    rejects(
        json!({"a": {"b": {"$integer": "AAAAAAAAAA=="}}}),
        "InvalidInteger",
        "at .a.b must be 8 bytes of base64, got 7",
    );
    rejects(
        json!({"$integer": "AAAAAAAAAAAAAA=="}),
        "InvalidInteger",
        "got 10",
    );
    rejects(
        json!({"$integer": "AAAAAAAAAAA"}),
        "InvalidInteger",
        "base64",
    );
    rejects(
        json!({"$integer": "!!!!!!!!!!!="}),
        "InvalidInteger",
        "base64",
    );
    rejects(json!({"$integer": 42}), "InvalidInteger", "got a number");
}

#[test]
fn bad_floats_are_rejected() {
    // 1.0 must be a plain number.
    rejects(
        json!({"$float": "AAAAAAAA8D8="}),
        "InvalidFloat",
        "ordinary number 1",
    );
    rejects(
        json!({"x": [{"$float": "AAAA"}]}),
        "InvalidFloat",
        "at .x[0] must be 8 bytes of base64, got 3",
    );
    rejects(json!({"$float": null}), "InvalidFloat", "got null");
}

#[test]
fn bad_bytes_are_rejected() {
    rejects(json!({"$bytes": "AQI"}), "InvalidBytes", "base64");
    rejects(json!({"$bytes": "AQ-_"}), "InvalidBytes", "base64");
    rejects(json!({"$bytes": []}), "InvalidBytes", "got an array");
}

#[test]
fn removed_types_and_dollar_fields_are_rejected() {
    rejects(
        json!({"tags": {"$set": []}}),
        "UnsupportedType",
        "at .tags encodes a Set, which is no longer supported",
    );
    rejects(json!({"$map": []}), "UnsupportedType", "Map");
    rejects(
        json!({"$other": 1}),
        "InvalidFieldName",
        "\"$other\" at (root) starts with '$'",
    );
    rejects(
        json!({"$integer": "KgAAAAAAAAA=", "x": 1}),
        "InvalidFieldName",
        "$integer",
    );
    rejects(json!({"$commitTs": null}), "InvalidFieldName", "$commitTs");
}

#[test]
fn field_names_must_be_printable_ascii_and_short() {
    rejects(
        json!({"ok": {"caf\u{e9}": 1}}),
        "InvalidFieldName",
        "at .ok has a character",
    );
    rejects(json!({"a\nb": 1}), "InvalidFieldName", "non-control ASCII");
    let long = "x".repeat(1025);
    rejects(
        json!({ long: 1 }),
        "InvalidFieldName",
        "longer than the maximum of 1024",
    );
    let fine = "x".repeat(1024);
    assert!(from_json(&json!({ fine: 1, "": 2, "_x": 3, "a b~": 4 })).is_ok());
}

#[test]
fn nesting_lengths_and_widths_are_limited() {
    let mut deep = json!(1);
    for _ in 0..64 {
        deep = json!([deep]);
    }
    assert!(from_json(&deep).is_ok());
    rejects(
        json!({ "d": deep }),
        "TooNestedError",
        "more than 64 levels",
    );
    rejects(
        json!({"a": vec![0; 8193]}),
        "ArrayTooLong",
        "at .a has 8193 elements",
    );
    assert!(from_json(&json!(vec![0; 8192])).is_ok());
    let wide: serde_json::Map<String, Json> =
        (0..1025).map(|i| (format!("f{i}"), json!(i))).collect();
    rejects(Json::Object(wide), "TooManyFields", "1025 fields");
}

#[test]
fn error_paths_can_start_at_a_named_root() {
    let err = from_json_at(&json!({"tags": ["a", {"$integer": 1}]}), "args").unwrap_err();
    assert!(
        err.to_string().contains("$integer at args.tags[1]"),
        "{err}"
    );
    assert!(matches!(err, ValueError::InvalidInteger { .. }));
}

#[test]
fn clean_json_is_lossy_and_readable() {
    let v = Value::Object(Object::from([
        ("i".to_owned(), Value::Int64(i64::MIN)),
        ("nan".to_owned(), Value::Float64(f64::NAN)),
        ("inf".to_owned(), Value::Float64(f64::INFINITY)),
        ("b".to_owned(), Value::Bytes(vec![0, 16, 131])),
        ("f".to_owned(), Value::Float64(0.5)),
        (
            "l".to_owned(),
            Value::Array(vec![Value::Null, Value::Boolean(true)]),
        ),
    ]));
    assert_eq!(
        to_clean_json(&v),
        json!({"i": "-9223372036854775808", "nan": "NaN", "inf": "Infinity", "b": "ABCD",
               "f": 0.5, "l": [null, true]})
    );
}

fn arb_json() -> impl Strategy<Value = Json> {
    let key = prop_oneof![
        Just("$integer".to_owned()),
        Just("$float".to_owned()),
        Just("$bytes".to_owned()),
        Just("$set".to_owned()),
        Just("$map".to_owned()),
        Just("$x".to_owned()),
        Just("_id".to_owned()),
        Just("0".to_owned()),
        Just("\u{e9}".to_owned()),
        "[a-c ]{0,3}",
    ];
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
        "[A-Za-z0-9+/=!-]{0,16}".prop_map(Json::String),
        prop_oneof![
            Just("KgAAAAAAAAA="),
            Just("AAAAAAAA+H8="),
            Just("AAAAAAAA8D8="),
            Just("AQ==")
        ]
        .prop_map(|s| Json::String(s.to_owned())),
    ];
    leaf.prop_recursive(6, 64, 4, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            proptest::collection::vec((key.clone(), inner), 0..3)
                .prop_map(|fields| Json::Object(fields.into_iter().collect())),
        ]
    })
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Int64),
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(-0.0),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(1e21),
            Just(5e-324)
        ]
        .prop_map(Value::Float64),
        any::<bool>().prop_map(Value::Boolean),
        any::<String>().prop_map(Value::String),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
    ];
    // Valid field names: printable ASCII, not starting with '$'; plus array-index names.
    let name = prop_oneof!["[ -#%-~][ -~]{0,6}", "", "[0-9]{1,3}"];
    leaf.prop_recursive(4, 32, 4, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(name.clone(), inner, 0..4).prop_map(Value::Object),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn decoding_arbitrary_json_never_panics(j in arb_json()) {
        match from_json(&j) {
            Ok(v) => prop_assert_eq!(from_json(&to_json(&v)).unwrap(), v),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn values_cross_the_typed_conversions_unchanged(v in arb_value()) {
        prop_assert_eq!(&keel_values::to_value(&v).unwrap(), &v);
        prop_assert_eq!(&keel_values::from_value::<Value>(&v).unwrap(), &v);
        // A `serde_json::Value` sees Convex JSON wherever plain JSON would lose the type.
        let json: Json = keel_values::from_value(&v).unwrap();
        prop_assert_eq!(&from_json(&json).unwrap(), &v);
    }

    #[test]
    fn encoding_then_decoding_is_the_identity(v in arb_value()) {
        prop_assert_eq!(&from_json(&to_json(&v)).unwrap(), &v);
        let text = to_json_string(&v);
        let parsed: Json = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&from_json(&parsed).unwrap(), &v);
    }
}

#[test]
fn negative_zero_text_reads_as_negative_zero_like_javascript() {
    let v = from_json(&serde_json::from_str("-0").unwrap()).unwrap();
    assert!(
        matches!(v, Value::Float64(f) if f == 0.0 && f.is_sign_negative()),
        "{v:?}"
    );
    let v = from_json(&serde_json::from_str("-0.0").unwrap()).unwrap();
    assert!(matches!(v, Value::Float64(f) if f.is_sign_negative()));
}
