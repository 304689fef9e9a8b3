//! User metadata (`public_metadata`, `private_metadata`, `unsafe_metadata`): JSON objects of at
//! most 8 KiB each (Clerk's limit), replaced by `PATCH /v1/users/{id}` and deep-merged by
//! `PATCH /v1/users/{id}/metadata` — nested objects merge key by key, any other value
//! replaces, and `null` removes the key at its level.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// Largest serialized size of one metadata object.
pub(crate) const MAX_METADATA_BYTES: usize = 8 * 1024;

/// The three metadata fields, by their Backend-API names.
pub(crate) const FIELDS: [&str; 3] = ["public_metadata", "private_metadata", "unsafe_metadata"];

/// Checks a metadata value given for `field`: an object (or `null`, meaning `{}`), at most
/// [`MAX_METADATA_BYTES`] serialized.
pub(crate) fn checked(field: &'static str, value: Value) -> Result<Value, ApiError> {
    let value = match value {
        Value::Null => Value::Object(Map::new()),
        Value::Object(map) => Value::Object(map),
        other => {
            return Err(ApiError::unprocessable(
                "form_param_type_invalid",
                "must be an object",
                format!("`{field}` must be a JSON object, not {}.", kind_of(&other)),
            )
            .param(field));
        }
    };
    within_size(field, value)
}

/// `value` if it serializes to at most [`MAX_METADATA_BYTES`].
pub(crate) fn within_size(field: &'static str, value: Value) -> Result<Value, ApiError> {
    let size = value.to_string().len();
    if size > MAX_METADATA_BYTES {
        return Err(ApiError::unprocessable(
            "form_param_exceeds_allowed_size",
            "is too large",
            format!(
                "`{field}` is {size} bytes; metadata may be at most {MAX_METADATA_BYTES} bytes."
            ),
        )
        .param(field));
    }
    Ok(value)
}

/// Deep-merges `patch` into `base` (both objects): nested objects merge, `null` removes,
/// anything else replaces.
pub(crate) fn deep_merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                match value {
                    Value::Null => {
                        base.remove(&key);
                    }
                    Value::Object(_) if base.get(&key).is_some_and(Value::is_object) => {
                        if let Some(slot) = base.get_mut(&key) {
                            deep_merge(slot, value);
                        }
                    }
                    Value::Object(inner) => {
                        // A new nested object: its own `null`s mean nothing to remove.
                        let mut fresh = Value::Object(Map::new());
                        deep_merge(&mut fresh, Value::Object(inner));
                        base.insert(key, fresh);
                    }
                    other => {
                        base.insert(key, other);
                    }
                }
            }
        }
        (base, patch) => *base = patch,
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deep_merge_merges_nested_objects_and_removes_nulls() {
        let mut base = json!({"role": "user", "prefs": {"theme": "dark", "lang": "en"}, "gone": 1});
        deep_merge(
            &mut base,
            json!({"prefs": {"lang": null, "tz": "UTC"}, "gone": null, "plan": {"tier": 2, "x": null}, "role": ["a"]}),
        );
        assert_eq!(
            base,
            json!({"role": ["a"], "prefs": {"theme": "dark", "tz": "UTC"}, "plan": {"tier": 2}})
        );
    }

    #[test]
    fn metadata_must_be_a_small_object() {
        assert_eq!(checked("public_metadata", Value::Null).unwrap(), json!({}));
        let err = checked("public_metadata", json!([1])).unwrap_err();
        assert_eq!(
            (err.code, err.param_name),
            ("form_param_type_invalid", Some("public_metadata"))
        );
        let big = json!({ "k": "x".repeat(MAX_METADATA_BYTES) });
        let err = checked("private_metadata", big).unwrap_err();
        assert_eq!(err.code, "form_param_exceeds_allowed_size");
    }
}
