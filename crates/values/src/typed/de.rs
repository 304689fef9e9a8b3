//! Decoding a Convex [`Value`] into a Rust type: a `serde` deserializer that reads the value in
//! place, knows where it is, and applies Convex's validator rules to each kind of Rust type (see
//! the [module docs](crate::typed) for the mapping).

use serde::de::value::{BorrowedStrDeserializer, MapDeserializer};
use serde::de::{self, Deserialize, Expected, Unexpected, Visitor};

use super::access::{Fields, Items, Variant};
use super::error::{ConversionError, ConversionErrorKind, show};
use super::path::Path;
use crate::error::shown_name;
use crate::json::{bytes_base64, float_base64, integer_base64, is_special_float};
use crate::{Object, Value};

/// Largest float up to which every whole number is exact (2⁵³).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Decodes a value into `T`, the way a caller reads a function's **result**: fields `T` does not
/// declare are ignored (a result may carry more than the caller reads); every other rule is
/// checked (see the [module docs](crate::typed)).
///
/// ```
/// use keel_values::{from_value, obj};
/// #[derive(serde::Deserialize)]
/// struct Post { title: String }
/// let post: Post = from_value(&obj! { "title" => "Hi", "_creationTime" => 1.5 }).unwrap();
/// assert_eq!(post.title, "Hi");
/// ```
pub fn from_value<'de, T: Deserialize<'de>>(value: &'de Value) -> Result<T, ConversionError> {
    decode(value, ExtraFields::Ignore)
}

/// Decodes a function's **arguments** into `T` as Convex validates them: `args` must be an
/// object, and an object holding a field its struct does not declare is refused, like an
/// `ArgumentValidationError` in Convex (see the [module docs](crate::typed) for every rule).
///
/// ```
/// use keel_values::{from_args, obj};
/// #[derive(serde::Deserialize, Debug)]
/// struct ListArgs { limit: Option<u32> }
/// // JavaScript sends `{ limit: 10 }` as a float64: it fits a u32.
/// assert_eq!(from_args::<ListArgs>(&obj! { "limit" => 10.0 }).unwrap().limit, Some(10));
/// let err = from_args::<ListArgs>(&obj! { "limit" => 10.0, "sort" => "new" }).unwrap_err();
/// assert_eq!(err.code(), "ExtraField");
/// assert!(err.to_string().starts_with("Object contains extra field `sort`"));
/// ```
pub fn from_args<'de, T: Deserialize<'de>>(args: &'de Value) -> Result<T, ConversionError> {
    if !matches!(args, Value::Object(_)) {
        return Err(ConversionError::at(
            ConversionErrorKind::NotAnObject {
                found: args.type_name(),
            },
            String::new(),
        ));
    }
    decode(args, ExtraFields::Reject)
}

fn decode<'de, T: Deserialize<'de>>(
    value: &'de Value,
    extra_fields: ExtraFields,
) -> Result<T, ConversionError> {
    let root = Path::ROOT;
    let deserializer = ValueDeserializer {
        value,
        path: &root,
        extra_fields,
        struct_field: false,
    };
    // A `Deserialize` impl may fail without asking the deserializer for anything.
    T::deserialize(deserializer).map_err(|e| e.locate(String::new, value, None))
}

/// What to do with an object's fields that the Rust struct does not declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ExtraFields {
    /// Refuse them (arguments).
    Reject,
    /// Skip them (results).
    Ignore,
}

/// `v.object({title, body})`: a struct as the object validator it stands for.
fn object_validator(fields: &[&str]) -> String {
    format!("v.object({{{}}})", fields.join(", "))
}

/// `v.union(v.literal("draft"), v.literal("published"))`: an enum's variants.
fn union_validator(variants: &[&str]) -> String {
    let literals: Vec<String> = variants
        .iter()
        .map(|v| format!("v.literal({v:?})"))
        .collect();
    format!("v.union({})", literals.join(", "))
}

pub(super) struct ValueDeserializer<'de, 'p> {
    pub(super) value: &'de Value,
    pub(super) path: &'p Path<'p>,
    pub(super) extra_fields: ExtraFields,
    /// The value of a field of a struct being decoded: if the struct ignores it, it is an extra
    /// field.
    pub(super) struct_field: bool,
}

impl<'de, 'p> ValueDeserializer<'de, 'p> {
    fn mismatch(&self, expected: impl Into<String>) -> ConversionError {
        ConversionError::at(
            ConversionErrorKind::Mismatch {
                value: show(self.value),
                expected: expected.into(),
            },
            self.path.render(),
        )
    }

    /// Places an error a visitor raised at this value.
    fn located<T>(&self, result: Result<T, ConversionError>) -> Result<T, ConversionError> {
        result.map_err(|e| e.locate(|| self.path.render(), self.value, None))
    }

    fn fields(&self, object: &'de Object, struct_fields: bool) -> Fields<'de, 'p> {
        Fields {
            iter: object.iter(),
            pending: None,
            path: self.path,
            extra_fields: self.extra_fields,
            struct_fields,
        }
    }

    fn items(&self, items: &'de [Value]) -> Items<'de, 'p> {
        Items {
            iter: items.iter().enumerate(),
            path: self.path,
            extra_fields: self.extra_fields,
        }
    }

    /// A float64 holding a whole number in `[min, max_exclusive)`: what every Rust integer type
    /// accepts.
    fn whole_number(
        &self,
        type_name: &str,
        min: f64,
        max_exclusive: f64,
    ) -> Result<f64, ConversionError> {
        match self.value {
            Value::Float64(f) if f.fract() == 0.0 && *f >= min && *f < max_exclusive => Ok(*f),
            _ => Err(self.mismatch(format!(
                "v.float64() holding a whole number that fits {type_name}"
            ))),
        }
    }

    /// The Convex-JSON object (`{"$integer": …}` …) that stands for a value with no plain JSON
    /// form, for types that take any value.
    fn visit_convex_json<V: Visitor<'de>>(
        &self,
        visitor: V,
        tag: &'static str,
        base64: String,
    ) -> Result<V::Value, ConversionError> {
        let map = MapDeserializer::new(std::iter::once((tag, base64)));
        self.located(visitor.visit_map(map))
    }
}

macro_rules! whole_number {
    ($method:ident, $visit:ident, $ty:ty, $min:expr, $max_exclusive:expr) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConversionError> {
            let n = self.whole_number(stringify!($ty), $min, $max_exclusive)?;
            self.located(visitor.$visit(n as $ty))
        }
    };
}

/// 2⁶³ and 2¹²⁷, the exclusive bounds of the signed 64- and 128-bit types (exact as floats).
const TWO_63: f64 = 9_223_372_036_854_775_808.0;
const TWO_127: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;

impl<'de> de::Deserializer<'de> for ValueDeserializer<'de, '_> {
    type Error = ConversionError;

    /// Types that take any value (`serde_json::Value`, [`Value`], untagged enums) see plain JSON
    /// where there is one — a whole float64 as an integer — and Convex JSON where there is not:
    /// `{"$integer": …}` for an int64, `{"$bytes": …}`, `{"$float": …}` for NaN, ±∞ and −0.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConversionError> {
        match self.value {
            Value::Null => self.located(visitor.visit_unit()),
            Value::Int64(i) => self.visit_convex_json(visitor, "$integer", integer_base64(*i)),
            Value::Float64(f) if is_special_float(*f) => {
                self.visit_convex_json(visitor, "$float", float_base64(*f))
            }
            Value::Float64(f) if f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER => {
                if *f >= 0.0 {
                    self.located(visitor.visit_u64(*f as u64))
                } else {
                    self.located(visitor.visit_i64(*f as i64))
                }
            }
            Value::Float64(f) => self.located(visitor.visit_f64(*f)),
            Value::Boolean(b) => self.located(visitor.visit_bool(*b)),
            Value::String(s) => self.located(visitor.visit_borrowed_str(s)),
            Value::Bytes(b) => self.visit_convex_json(visitor, "$bytes", bytes_base64(b)),
            Value::Array(items) => self.located(visitor.visit_seq(self.items(items))),
            Value::Object(fields) => self.located(visitor.visit_map(self.fields(fields, false))),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConversionError> {
        match self.value {
            Value::Boolean(b) => self.located(visitor.visit_bool(*b)),
            _ => Err(self.mismatch("v.boolean()")),
        }
    }

    whole_number!(deserialize_i8, visit_i8, i8, -128.0, 128.0);
    whole_number!(deserialize_i16, visit_i16, i16, -32_768.0, 32_768.0);
    whole_number!(
        deserialize_i32,
        visit_i32,
        i32,
        -2_147_483_648.0,
        2_147_483_648.0
    );
    whole_number!(deserialize_i64, visit_i64, i64, -TWO_63, TWO_63);
    whole_number!(deserialize_i128, visit_i128, i128, -TWO_127, TWO_127);
    whole_number!(deserialize_u8, visit_u8, u8, 0.0, 256.0);
    whole_number!(deserialize_u16, visit_u16, u16, 0.0, 65_536.0);
    whole_number!(deserialize_u32, visit_u32, u32, 0.0, 4_294_967_296.0);
    whole_number!(deserialize_u64, visit_u64, u64, 0.0, 2.0 * TWO_63);
    whole_number!(deserialize_u128, visit_u128, u128, 0.0, 4.0 * TWO_127);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConversionError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConversionError> {
        match self.value {
            Value::Float64(f) => self.located(visitor.visit_f64(*f)),
            _ => Err(self.mismatch("v.float64()")),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConversionError> {
        let mut chars = match self.value {
            Value::String(s) => s.chars(),
            _ => return Err(self.mismatch("v.string() holding one character")),
        };
        match (chars.next(), chars.next()) {
            (Some(c), None) => self.located(visitor.visit_char(c)),
            _ => Err(self.mismatch("v.string() holding one character")),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConversionError> {
        match self.value {
            Value::String(s) => self.located(visitor.visit_borrowed_str(s)),
            _ => Err(self.mismatch("v.string()")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConversionError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConversionError> {
        match self.value {
            Value::Bytes(b) => self.located(visitor.visit_borrowed_bytes(b)),
            _ => Err(self.mismatch("v.bytes()")),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, ConversionError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConversionError> {
        match self.value {
            Value::Null => self.located(visitor.visit_none()),
            _ => {
                let (path, value) = (self.path, self.value);
                visitor
                    .visit_some(self)
                    .map_err(|e| e.locate(|| path.render(), value, None))
            }
        }
    }

    /// `()` and unit structs: `null`, or an empty object (so that `()` can declare "no
    /// arguments").
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConversionError> {
        match self.value {
            Value::Null => self.located(visitor.visit_unit()),
            Value::Object(fields) if fields.is_empty() => self.located(visitor.visit_unit()),
            _ => Err(self.mismatch("v.null()")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ConversionError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ConversionError> {
        let (path, value) = (self.path, self.value);
        visitor
            .visit_newtype_struct(self)
            .map_err(|e| e.locate(|| path.render(), value, None))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConversionError> {
        match self.value {
            Value::Array(items) => self.located(visitor.visit_seq(self.items(items))),
            _ => Err(self.mismatch("v.array(…)")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ConversionError> {
        match self.value {
            Value::Array(items) if items.len() == len => {
                self.located(visitor.visit_seq(self.items(items)))
            }
            _ => Err(self.mismatch(format!("v.array(…) of {len} elements"))),
        }
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ConversionError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ConversionError> {
        match self.value {
            Value::Object(fields) => self.located(visitor.visit_map(self.fields(fields, false))),
            _ => Err(self.mismatch("v.record(v.string(), …)")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConversionError> {
        let Value::Object(object) = self.value else {
            return Err(self.mismatch(object_validator(fields)));
        };
        visitor.visit_map(self.fields(object, true)).map_err(|e| {
            e.locate(
                || self.path.render(),
                self.value,
                Some(&|| object_validator(fields)),
            )
        })
    }

    /// A unit variant is its name as a string; any other variant is an object with one field,
    /// the variant's name, holding its content.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConversionError> {
        match self.value {
            Value::String(s) => {
                self.located(visitor.visit_enum(BorrowedStrDeserializer::<ConversionError>::new(s)))
            }
            Value::Object(fields) if fields.len() == 1 => {
                let Some((name, value)) = fields.iter().next() else {
                    return Err(self.mismatch(union_validator(variants)));
                };
                self.located(visitor.visit_enum(Variant {
                    name,
                    value,
                    path: self.path,
                    extra_fields: self.extra_fields,
                }))
            }
            _ => Err(self.mismatch(union_validator(variants))),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, ConversionError> {
        self.deserialize_str(visitor)
    }

    /// What a struct asks for the value of a field it does not declare: for arguments, an extra
    /// field.
    fn deserialize_ignored_any<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, ConversionError> {
        match (self.extra_fields, self.struct_field, self.path.field_name()) {
            (ExtraFields::Reject, true, Some(field)) => Err(ConversionError::unlocated(
                ConversionErrorKind::ExtraField {
                    field: shown_name(field),
                    object: String::new(),
                    expected: String::new(),
                },
            )),
            _ => visitor.visit_unit(),
        }
    }
}

/// Errors raised through serde's constructors (by derived or hand-written `Deserialize` impls)
/// do not know where they are: the deserializer places them on the way out.
impl de::Error for ConversionError {
    fn custom<T: std::fmt::Display>(message: T) -> Self {
        ConversionError::unlocated(ConversionErrorKind::Invalid {
            message: message.to_string(),
            value: String::new(),
        })
    }

    fn invalid_type(_unexpected: Unexpected<'_>, expected: &dyn Expected) -> Self {
        ConversionError::unlocated(ConversionErrorKind::Mismatch {
            value: String::new(),
            expected: expected.to_string(),
        })
    }

    fn invalid_value(unexpected: Unexpected<'_>, expected: &dyn Expected) -> Self {
        Self::invalid_type(unexpected, expected)
    }

    fn invalid_length(_len: usize, expected: &dyn Expected) -> Self {
        ConversionError::unlocated(ConversionErrorKind::Mismatch {
            value: String::new(),
            expected: format!("v.array(…) of {expected}"),
        })
    }

    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        ConversionError::unlocated(ConversionErrorKind::Mismatch {
            value: String::new(),
            expected: union_validator(expected),
        })
    }

    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> Self {
        ConversionError::unlocated(ConversionErrorKind::ExtraField {
            field: shown_name(field),
            object: String::new(),
            expected: String::new(),
        })
    }

    fn missing_field(field: &'static str) -> Self {
        ConversionError::unlocated(ConversionErrorKind::MissingField {
            field: field.to_owned(),
            object: String::new(),
            expected: String::new(),
        })
    }
}
