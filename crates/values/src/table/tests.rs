//! Typed documents against hostile values: ids that are no ids, documents without their system
//! fields or with fields their type lacks, optional fields and nested ones.

use serde::{Deserialize, Serialize};

use super::{Doc, FieldValidator, Id, Table, from_fields, to_fields};
use crate::{DocumentId, TableNumber, Validator, Value, from_args, obj, to_value};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Inner {
    note: Option<String>,
}

impl FieldValidator for Inner {
    fn validator() -> Validator {
        Validator::object([("note", <Option<String>>::field_validator())])
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Card {
    title: String,
    owner: Id<Card>,
    inner: Vec<Inner>,
    marks: Vec<Option<f64>>,
}

impl FieldValidator for Card {
    fn validator() -> Validator {
        Validator::object([
            ("title", String::field_validator()),
            ("owner", <Id<Card>>::field_validator()),
            ("inner", <Vec<Inner>>::field_validator()),
            ("marks", <Vec<Option<f64>>>::field_validator()),
        ])
    }
}

impl Table for Card {
    const NAME: &'static str = "cards";
    const INDEXES: &'static [(&'static str, &'static [&'static str])] = &[];
}

fn id() -> Id<Card> {
    Id::from_untyped(DocumentId::new(TableNumber(10001), [3; 16]))
}

#[test]
fn ids_are_plain_strings_and_garbage_is_refused() {
    let value = to_value(&id()).unwrap();
    assert_eq!(value, Value::from(id().to_string()));
    #[derive(Deserialize)]
    struct Args {
        #[allow(dead_code)]
        id: Id<Card>,
    }
    for hostile in [
        obj! { "id" => "not an id" },
        obj! { "id" => "" },
        obj! { "id" => 5.0 },
        obj! { "id" => "x".repeat(10_000) },
    ] {
        let err = from_args::<Args>(&hostile).err().expect("refused");
        assert_eq!(err.path(), ".id", "{err}");
    }
}

#[test]
fn none_is_left_out_nested_too_and_nulls_in_arrays_stay() {
    let card = Card {
        title: "t".into(),
        owner: id(),
        inner: vec![
            Inner { note: None },
            Inner {
                note: Some("n".into()),
            },
        ],
        marks: vec![None, Some(2.0)],
    };
    let fields = to_fields(&card).unwrap();
    assert_eq!(
        Value::Object(fields.clone()),
        obj! {
            "title" => "t", "owner" => id().to_string(),
            "inner" => vec![obj! {}, obj! { "note" => "n" }],
            "marks" => vec![Value::Null, Value::Float64(2.0)],
        }
    );
    assert_eq!(
        Card::validator().describe(),
        "v.object({inner: v.array(v.object({note: v.optional(v.string())})), marks: \
         v.array(v.union(v.float64(), v.null())), owner: v.id(\"cards\"), title: v.string()})"
    );
    let none_id = |_: &DocumentId| Some("cards".to_owned());
    Card::validator()
        .check_document(&fields, &none_id)
        .expect("the encoded fields match the derived validator");
    assert_eq!(from_fields::<Card>(&fields).unwrap(), card);
}

#[test]
fn documents_that_do_not_fit_are_refused() {
    let good = obj! {
        "title" => "t", "owner" => id().to_string(), "inner" => Vec::<Value>::new(),
        "marks" => Vec::<Value>::new(),
    };
    let Value::Object(good) = good else {
        unreachable!()
    };
    assert!(from_fields::<Card>(&good).is_ok());
    let mut extra = good.clone();
    extra.insert("more".into(), Value::Null);
    assert_eq!(
        from_fields::<Card>(&extra).unwrap_err().code(),
        "ExtraField"
    );
    let mut wrong = good.clone();
    wrong.insert("title".into(), Value::Int64(1));
    assert_eq!(from_fields::<Card>(&wrong).unwrap_err().path(), ".title");

    // A document value: its system fields are required.
    let mut doc = good.clone();
    doc.insert("_id".into(), id().to_string().into());
    doc.insert("_creationTime".into(), 2.0.into());
    let back: Doc<Card> = crate::from_value(&Value::Object(doc.clone())).unwrap();
    assert_eq!(back.id, id());
    assert_eq!(back.creation_time, 2.0);
    for (field, bad) in [
        ("_id", Value::from("nope")),
        ("_id", Value::Float64(1.0)),
        ("_creationTime", Value::from("yesterday")),
    ] {
        let mut hostile = doc.clone();
        hostile.insert(field.into(), bad);
        assert!(crate::from_value::<Doc<Card>>(&Value::Object(hostile)).is_err());
    }
    let mut no_id = doc.clone();
    no_id.remove("_id");
    assert!(crate::from_value::<Doc<Card>>(&Value::Object(no_id)).is_err());
    assert!(crate::from_value::<Doc<Card>>(&Value::from("a string")).is_err());
}
