//! The snapshot ZIP's layout and Convex's "export JSON" value encoding (Convex's
//! `ValueFormat::ConvexExportJSON`): lossless, yet readable by people and other tools.
//!
//! | value | export JSON |
//! |---|---|
//! | int64 | a JSON integer (`42`) |
//! | finite float64 | a JSON number always written with a point or an exponent (`42.0`) |
//! | NaN, ±Infinity | `{"$float": "<base64 of the 8 little-endian bytes>"}` |
//! | bytes | `{"$bytes": "<base64>"}` |
//! | string, boolean, null, array, object | themselves |
//!
//! Reading it back, a JSON integer is an int64 (one beyond the int64 range a float64, as Convex
//! reads it), a number with a point or an exponent a float64, and an object with a `$`-prefixed
//! key the internal Convex JSON encoding (`$integer`, `$float`, `$bytes`; anything else is
//! refused).

use keel_values::{Object, Value, ValueError};
use serde_json::{Map, Number, Value as Json};

/// The first entry of every export: what the ZIP holds.
pub(crate) const README_ENTRY: &str = "README.md";
/// The list of user tables: one `{"name", "id"}` line per table, in table-number order.
pub(crate) const TABLES_ENTRY: &str = "_tables/documents.jsonl";
/// The documents of a table: `<table>/documents.jsonl`.
pub(crate) const DOCUMENTS_FILE: &str = "documents.jsonl";
/// Beside every table's documents: `<table>/generated_schema.jsonl`, holding `"uniform"`.
pub(crate) const GENERATED_SCHEMA_FILE: &str = "generated_schema.jsonl";
/// The stored files' directory (`_storage/documents.jsonl`, then `_storage/<id><ext>`).
pub(crate) const STORAGE_DIR: &str = "_storage";

/// The README written first into every export (Keel's own words).
pub(crate) const README_TEXT: &str = "# Keel snapshot export\n\n\
This ZIP holds a snapshot of a Keel deployment's tables in Convex's snapshot export format.\n\n\
* `_tables/documents.jsonl` lists the tables with their table numbers (which document ids \
encode).\n\
* `<table>/documents.jsonl` holds one document per line, in `_id` order, as \"export JSON\": \
int64 values are JSON integers, float64 values always carry a decimal point, bytes and \
non-finite floats are `{\"$bytes\": …}` / `{\"$float\": …}` objects.\n\
* `_storage/documents.jsonl` and `_storage/<id>` (when file storage is included) are the \
stored files.\n\n\
Load it with `keel import <file.zip>` (or `npx convex import`).\n";

/// A value in export JSON (see the module docs).
pub(crate) fn to_export_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Int64(i) => Json::Number(Number::from(*i)),
        Value::Float64(f) => match Number::from_f64(*f) {
            Some(n) if f.is_finite() => Json::Number(n),
            _ => keel_values::to_json(value),
        },
        Value::Boolean(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(_) => keel_values::to_json(value),
        Value::Array(items) => Json::Array(items.iter().map(to_export_json).collect()),
        Value::Object(fields) => Json::Object(object_to_export_json(fields)),
    }
}

/// An object's fields in export JSON.
pub(crate) fn object_to_export_json(fields: &Object) -> Map<String, Json> {
    fields
        .iter()
        .map(|(name, value)| (name.clone(), to_export_json(value)))
        .collect()
}

/// A value from export JSON (see the module docs); errors name the path inside the value.
pub(crate) fn from_export_json(json: &Json, path: &str) -> Result<Value, ValueError> {
    match json {
        Json::Null => Ok(Value::Null),
        Json::Bool(b) => Ok(Value::Boolean(*b)),
        Json::Number(n) => Ok(match n.as_i64() {
            Some(i) if !n.is_f64() => Value::Int64(i),
            _ => Value::Float64(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Json::String(s) => Ok(Value::String(s.clone())),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| from_export_json(item, &format!("{path}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Json::Object(map) if map.keys().any(|k| k.starts_with('$')) => {
            keel_values::from_json_at(json, path)
        }
        Json::Object(map) => {
            let mut out = Object::new();
            for (name, field) in map {
                out.insert(
                    name.clone(),
                    from_export_json(field, &format!("{path}.{name}"))?,
                );
            }
            Ok(Value::Object(out))
        }
    }
}

/// The file extension Keel gives a stored file in an export, from its content type (Convex
/// guesses one the same way; the importer ignores it).
pub(crate) fn extension_for(content_type: Option<&str>) -> &'static str {
    let essence = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("image/png") => ".png",
        Some("image/jpeg") => ".jpg",
        Some("image/gif") => ".gif",
        Some("image/webp") => ".webp",
        Some("image/svg+xml") => ".svg",
        Some("image/avif") => ".avif",
        Some("text/plain") => ".txt",
        Some("text/html") => ".html",
        Some("text/css") => ".css",
        Some("text/csv") => ".csv",
        Some("text/javascript" | "application/javascript") => ".js",
        Some("application/json") => ".json",
        Some("application/pdf") => ".pdf",
        Some("application/zip") => ".zip",
        Some("audio/mpeg") => ".mp3",
        Some("video/mp4") => ".mp4",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_values::obj;
    use serde_json::json;

    #[test]
    fn writes_convex_export_json() {
        let value = obj! {
            "i" => 123i64,
            "f" => 123.0,
            "neg0" => -0.0,
            "nan" => f64::NAN,
            "b" => vec![1u8, 2],
            "s" => "x",
            "a" => Value::Array(vec![Value::Null, Value::Boolean(true)]),
        };
        let text = to_export_json(&value).to_string();
        assert!(text.contains("\"i\":123,"), "{text}");
        assert!(text.contains("\"f\":123.0"), "{text}");
        assert!(text.contains("\"neg0\":-0.0"), "{text}");
        assert!(
            text.contains("\"nan\":{\"$float\":\"AAAAAAAA+H8=\"}"),
            "{text}"
        );
        assert!(text.contains("\"b\":{\"$bytes\":\"AQI=\"}"), "{text}");
    }

    #[test]
    fn reads_back_losslessly() {
        let value = obj! {
            "i" => i64::MIN,
            "f" => 0.1,
            "whole" => 7.0,
            "neg0" => -0.0,
            "inf" => f64::NEG_INFINITY,
            "b" => vec![0u8, 255],
            "nested" => obj! { "x" => Value::Array(vec![Value::Int64(1), Value::Float64(1.0)]) },
        };
        let text = to_export_json(&value).to_string();
        let json: Json = serde_json::from_str(&text).unwrap();
        let back = from_export_json(&json, "").unwrap();
        assert_eq!(back, value);
        let Some(Value::Float64(neg0)) = back.as_object().unwrap().get("neg0").cloned() else {
            panic!("neg0 is a float");
        };
        assert!(neg0.is_sign_negative());
    }

    #[test]
    fn reads_internal_encodings_and_refuses_unknown_ones() {
        assert_eq!(
            from_export_json(&json!({"$integer": "KgAAAAAAAAA="}), "").unwrap(),
            Value::Int64(42)
        );
        let err = from_export_json(&json!({"a": {"$set": []}}), "").unwrap_err();
        assert!(err.to_string().contains(".a"), "{err}");
        assert!(from_export_json(&json!({"a": {"$bytes": "not base64!"}}), "").is_err());
        assert_eq!(
            from_export_json(&json!(18446744073709551615u64), "").unwrap(),
            Value::Float64(18446744073709551615.0)
        );
    }
}
