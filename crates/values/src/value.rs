//! The [`Value`] type: everything a document field, a function argument or a result can hold.

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// An object's fields, ordered by field name (byte order), as Convex orders them.
pub type Object = BTreeMap<String, Value>;

/// A Convex value.
///
/// The variants are listed in their cross-type sort order (the order of index keys):
/// null < int64 < float64 < boolean < string < bytes < array < object. The "undefined" that
/// sorts before null exists only inside index keys (a missing field), never as a value.
///
/// Equality and ordering are total: floats compare with IEEE-754 `totalOrder`, so `NaN == NaN`
/// and `-0.0 < 0.0`, which is what an index needs.
///
/// ```
/// use keel_values::Value;
/// assert!(Value::Null < Value::Int64(-5));
/// assert!(Value::Int64(i64::MAX) < Value::Float64(f64::NEG_INFINITY));
/// assert!(Value::from("b") > Value::from("a"));
/// ```
#[derive(Clone, Debug)]
pub enum Value {
    /// `null`.
    Null,
    /// A 64-bit signed integer (a JavaScript `bigint`).
    Int64(i64),
    /// A 64-bit float (a JavaScript `number`).
    Float64(f64),
    /// `true` or `false`.
    Boolean(bool),
    /// A UTF-8 string.
    String(String),
    /// Raw bytes (a JavaScript `ArrayBuffer`).
    Bytes(Vec<u8>),
    /// An ordered list of values.
    Array(Vec<Value>),
    /// Fields by name.
    Object(Object),
}

impl Value {
    /// The rank of the variant in the cross-type order.
    fn type_rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Int64(_) => 1,
            Value::Float64(_) => 2,
            Value::Boolean(_) => 3,
            Value::String(_) => 4,
            Value::Bytes(_) => 5,
            Value::Array(_) => 6,
            Value::Object(_) => 7,
        }
    }

    /// The name of the value's type as Convex spells it in messages (`"int64"`, `"string"` …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int64(_) => "int64",
            Value::Float64(_) => "float64",
            Value::Boolean(_) => "boolean",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// The string inside a [`Value::String`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The fields inside a [`Value::Object`].
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// A number as `f64`, whether it is stored as a float or an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float64(f) => Some(*f),
            Value::Int64(i) => Some(*i as f64),
            _ => None,
        }
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Int64(a), Value::Int64(b)) => a.cmp(b),
            (Value::Float64(a), Value::Float64(b)) => a.total_cmp(b),
            (Value::Boolean(a), Value::Boolean(b)) => a.cmp(b),
            (Value::String(a), Value::String(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            (Value::Array(a), Value::Array(b)) => a.cmp(b),
            (Value::Object(a), Value::Object(b)) => a.iter().cmp(b.iter()),
            _ => self.type_rank().cmp(&other.type_rank()),
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int64(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float64(f)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(b)
    }
}

impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Self {
        Value::Array(a)
    }
}

impl From<Object> for Value {
    fn from(o: Object) -> Self {
        Value::Object(o)
    }
}

/// Builds a [`Value::Object`] from `"name" => value` pairs.
///
/// ```
/// use keel_values::{obj, Value};
/// let v = obj! { "title" => "Hello", "likes" => 3i64 };
/// assert_eq!(v.as_object().unwrap()["likes"], Value::Int64(3));
/// ```
#[macro_export]
macro_rules! obj {
    ($($k:expr => $v:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut o = $crate::Object::new();
        $( o.insert(::std::string::String::from($k), $crate::Value::from($v)); )*
        $crate::Value::Object(o)
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_compare_by_total_order() {
        assert_eq!(Value::Float64(f64::NAN), Value::Float64(f64::NAN));
        assert!(Value::Float64(-0.0) < Value::Float64(0.0));
        assert!(Value::Float64(f64::INFINITY) < Value::Float64(f64::NAN));
    }

    #[test]
    fn objects_compare_field_by_field() {
        let a = obj! { "a" => 1i64 };
        let ab = obj! { "a" => 1i64, "b" => 0i64 };
        let b = obj! { "b" => 0i64 };
        assert!(a < ab);
        assert!(ab < b);
    }
}
