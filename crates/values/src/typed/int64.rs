//! [`Int64`]: a Convex int64 (`v.int64()`, a JavaScript `bigint`) as a Rust type.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::json::integer_base64;
use crate::{Value, from_json};

/// A Convex int64 — `v.int64()`, a JavaScript `bigint` — in a Rust type.
///
/// Rust's integer types stand for float64s holding whole numbers (JavaScript numbers; see the
/// [module docs](crate::typed)), so a field that must hold an int64 is declared `Int64`. It
/// accepts only an int64 (`10n` from JavaScript) and encodes as one. Outside Keel's conversions
/// (with `serde_json`, say) it reads and writes the Convex-JSON form `{"$integer": "<base64>"}`.
///
/// ```
/// use keel_values::{from_args, obj, Int64};
/// #[derive(serde::Deserialize)]
/// struct Args { total: Int64 }
/// assert_eq!(from_args::<Args>(&obj! { "total" => 7i64 }).unwrap().total, Int64(7));
/// assert!(from_args::<Args>(&obj! { "total" => 7.0 }).is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Int64(pub i64);

impl From<i64> for Int64 {
    fn from(n: i64) -> Self {
        Int64(n)
    }
}

impl From<Int64> for i64 {
    fn from(n: Int64) -> Self {
        n.0
    }
}

impl From<Int64> for Value {
    fn from(n: Int64) -> Self {
        Value::Int64(n.0)
    }
}

impl fmt::Display for Int64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Int64 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("$integer", &integer_base64(self.0))?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Int64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Int64Visitor)
    }
}

/// Reads `{"$integer": "<base64>"}`, the form an int64 takes for types that accept any value.
struct Int64Visitor;

impl<'de> Visitor<'de> for Int64Visitor {
    type Value = Int64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("v.int64()")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Int64, A::Error> {
        let (Some((tag, content)), None) = (
            map.next_entry::<String, serde_json::Value>()?,
            map.next_key::<de::IgnoredAny>()?,
        ) else {
            return Err(de::Error::invalid_type(de::Unexpected::Map, &self));
        };
        let json = serde_json::Value::Object(serde_json::Map::from_iter([(tag, content)]));
        match from_json(&json) {
            Ok(Value::Int64(n)) => Ok(Int64(n)),
            Ok(_) => Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
            Err(e) => Err(de::Error::custom(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_convex_json_outside_keel() {
        let json = serde_json::to_value(Int64(42)).unwrap();
        assert_eq!(json, serde_json::json!({"$integer": "KgAAAAAAAAA="}));
        assert_eq!(serde_json::from_value::<Int64>(json).unwrap(), Int64(42));
        assert!(serde_json::from_value::<Int64>(serde_json::json!(42)).is_err());
        assert!(
            serde_json::from_value::<Int64>(serde_json::json!({"$float": "AAAAAAAA+H8="})).is_err()
        );
    }
}
