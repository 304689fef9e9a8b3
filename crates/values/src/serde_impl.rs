//! `serde` for [`Value`] as Convex JSON, so that a value can sit inside any serialisable type
//! (a function's result, a message) and come back with its exact types.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Value, from_json, to_json};

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        to_json(self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = serde_json::Value::deserialize(deserializer)?;
        from_json(&json).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Value, obj};

    #[test]
    fn round_trips_exact_types() {
        let v = obj! { "n" => 3i64, "f" => 3.0, "b" => vec![1u8, 2] };
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(serde_json::from_value::<Value>(json).unwrap(), v);
    }

    #[test]
    fn rejects_invalid_convex_json() {
        let json = serde_json::json!({ "$integer": "AAAA" });
        assert!(serde_json::from_value::<Value>(json).is_err());
    }
}
