use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::*;
use crate::{Value, obj};

#[derive(Debug, Deserialize, Serialize, PartialEq)]
struct ListArgs {
    limit: Option<u32>,
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
struct CreateArgs {
    title: String,
    body: String,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Batch {
    posts: Vec<CreateArgs>,
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
enum Status {
    Draft,
    Published,
    Scheduled { at: f64 },
}

fn args_error<T: for<'de> Deserialize<'de> + std::fmt::Debug>(args: Value) -> ConversionError {
    from_args::<T>(&args).unwrap_err()
}

#[test]
fn javascript_numbers_fit_integer_fields_but_int64s_and_fractions_do_not() {
    let decoded: ListArgs = from_args(&obj! { "limit" => 10.0 }).unwrap();
    assert_eq!(decoded.limit, Some(10));
    for bad in [
        obj! { "limit" => 10i64 },
        obj! { "limit" => 10.5 },
        obj! { "limit" => -1.0 },
        obj! { "limit" => 4_294_967_296.0 },
        obj! { "limit" => f64::NAN },
    ] {
        let err = args_error::<ListArgs>(bad);
        assert_eq!(err.code(), "ValueDoesNotMatch", "{err}");
        assert_eq!(err.path(), ".limit");
    }
    // The widest types take every whole float64 in range, and nothing at the edge beyond it.
    assert_eq!(
        from_value::<u64>(&Value::Float64(2f64.powi(63))).unwrap(),
        1 << 63
    );
    assert!(from_value::<u64>(&Value::Float64(2f64.powi(64))).is_err());
    assert_eq!(
        from_value::<i64>(&Value::Float64(-(2f64.powi(63)))).unwrap(),
        i64::MIN
    );
    assert!(from_value::<i64>(&Value::Float64(2f64.powi(63))).is_err());
}

#[test]
fn a_float_field_refuses_an_int64_and_an_int64_field_a_float() {
    let err = from_value::<f64>(&Value::Int64(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Value does not match validator.\nValue: 1n\nValidator: v.float64()"
    );
    assert_eq!(from_value::<Int64>(&Value::Int64(-3)).unwrap(), Int64(-3));
    let err = from_value::<Int64>(&Value::Float64(3.0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Value does not match validator.\nValue: 3\nValidator: v.int64()"
    );
}

#[test]
fn extra_fields_are_refused_in_arguments_and_skipped_in_results() {
    let err = args_error::<CreateArgs>(obj! { "title" => "t", "body" => "b", "tags" => "x" });
    assert_eq!(err.code(), "ExtraField");
    assert_eq!(
        err.to_string(),
        "Object contains extra field `tags` that is not in the validator.\n\
         Object: {body: \"b\", tags: \"x\", title: \"t\"}\n\
         Validator: v.object({title, body})"
    );
    let nested = obj! { "posts" => vec![
        obj! { "title" => "t", "body" => "b" },
        obj! { "title" => "t", "body" => "b", "x" => 1.0 },
    ] };
    let err = args_error::<Batch>(nested.clone());
    assert_eq!((err.code(), err.path()), ("ExtraField", ".posts[1]"));
    assert!(from_value::<Batch>(&nested).is_ok());
}

#[test]
fn missing_fields_name_the_field_and_the_object() {
    let err = args_error::<Batch>(obj! { "posts" => vec![obj! { "title" => "t" }] });
    assert_eq!(err.code(), "MissingField");
    assert_eq!(err.path(), ".posts[0]");
    let text = err.to_string();
    assert!(
        text.starts_with("Object is missing the required field `body`."),
        "{text}"
    );
    assert!(
        text.contains("\nObject: {title: \"t\"}\nValidator: v.object({title, body})"),
        "{text}"
    );
}

#[test]
fn options_take_a_missing_field_or_null() {
    assert_eq!(from_args::<ListArgs>(&obj! {}).unwrap().limit, None);
    assert_eq!(
        from_args::<ListArgs>(&obj! { "limit" => Value::Null })
            .unwrap()
            .limit,
        None
    );
}

#[test]
fn arguments_must_be_an_object_and_unit_declares_none() {
    let err = from_args::<ListArgs>(&Value::Array(vec![])).unwrap_err();
    assert_eq!(err.code(), "ArgumentsNotAnObject");
    assert_eq!(
        err.to_string(),
        "Function arguments must be one object, not an array."
    );
    from_args::<()>(&obj! {}).unwrap();
    assert!(from_args::<()>(&obj! { "a" => 1.0 }).is_err());
}

#[test]
fn enums_are_literals_or_one_field_objects() {
    assert_eq!(
        from_value::<Status>(&"Draft".into()).unwrap(),
        Status::Draft
    );
    assert_eq!(
        from_value::<Status>(&obj! { "Scheduled" => obj! { "at" => 1.5 } }).unwrap(),
        Status::Scheduled { at: 1.5 }
    );
    let err = from_value::<Status>(&"Gone".into()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Value does not match validator.\nValue: \"Gone\"\n\
         Validator: v.union(v.literal(\"Draft\"), v.literal(\"Published\"), v.literal(\"Scheduled\"))"
    );
    let err = from_value::<Status>(&obj! { "Scheduled" => obj! { "at" => "soon" } }).unwrap_err();
    assert_eq!(err.path(), ".Scheduled.at");
    assert_eq!(
        to_value(&Status::Published).unwrap(),
        Value::from("Published")
    );
}

#[test]
fn tuples_and_records() {
    let pair: (String, f64) = from_value(&Value::Array(vec!["a".into(), 1.0.into()])).unwrap();
    assert_eq!(pair, ("a".to_owned(), 1.0));
    assert!(from_value::<(String, f64)>(&Value::Array(vec!["a".into()])).is_err());
    let scores: BTreeMap<String, u8> = from_value(&obj! { "ada" => 3.0 }).unwrap();
    assert_eq!(scores["ada"], 3);
}

#[test]
fn any_typed_fields_keep_exact_values() {
    #[derive(Deserialize, Serialize)]
    struct Wrapped {
        value: Value,
        json: serde_json::Value,
    }
    let v = obj! {
        "value" => obj! { "n" => 5i64, "f" => 5.0, "b" => vec![1u8], "nan" => f64::NAN },
        "json" => obj! { "n" => 5i64, "f" => 5.0, "half" => 0.5 },
    };
    let decoded: Wrapped = from_args(&v).unwrap();
    assert_eq!(
        decoded.json,
        serde_json::json!({ "n": {"$integer": "BQAAAAAAAAA="}, "f": 5, "half": 0.5 })
    );
    assert_eq!(to_value(&decoded).unwrap(), v);
}

#[test]
fn encoding_maps_rust_numbers_to_float64_and_refuses_what_convex_cannot_hold() {
    #[derive(Serialize)]
    struct Counts {
        small: u32,
        signed: i64,
        total: Int64,
    }
    assert_eq!(
        to_value(&Counts {
            small: 3,
            signed: -4,
            total: Int64(5)
        })
        .unwrap(),
        obj! { "small" => 3.0, "signed" => -4.0, "total" => 5i64 }
    );
    let err = to_value(&obj_with("big", vec![1u64 << 60])).unwrap_err();
    assert_eq!((err.code(), err.path()), ("NotAConvexValue", ".big[0]"));
    let err = to_value(&BTreeMap::from([((1, 2), 3)])).unwrap_err();
    assert_eq!(err.code(), "NotAConvexValue");
    let err = to_value(&BTreeMap::from([("$bad", 1)])).unwrap_err();
    assert_eq!(err.code(), "InvalidFieldName");
    assert_eq!(to_value(&f64::NAN).unwrap(), Value::Float64(f64::NAN));
}

fn obj_with<T: Serialize>(name: &str, value: T) -> BTreeMap<String, T> {
    BTreeMap::from([(name.to_owned(), value)])
}

#[test]
fn a_hostile_value_is_not_echoed_back_whole() {
    let huge =
        obj! { "title" => Value::Array(vec![Value::from("x".repeat(1 << 16)); 64]), "body" => "b" };
    let err = args_error::<CreateArgs>(huge);
    assert!(err.to_string().len() < 1_000, "{}", err.to_string().len());
}
