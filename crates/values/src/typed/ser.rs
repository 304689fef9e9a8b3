//! Encoding a Rust value as a Convex [`Value`]: a `serde` serializer that builds the value
//! directly, with the same type mapping the decoder checks (see the [module docs](crate::typed)).

use serde::ser::{self, Serialize};

use super::error::{ConversionError, ConversionErrorKind};
use super::field_name::FieldName;
use super::path::{Step, step_text};
use crate::{Object, Value, from_json, validate_value};

/// Largest magnitude up to which every whole number is exact in a float64 (2⁵³).
const MAX_SAFE_INTEGER: u64 = 1 << 53;

/// Encodes a Rust value as a Convex value: Rust numbers become float64s (JavaScript numbers),
/// [`Int64`](crate::Int64) an int64, a [`Value`] inside stays exactly what it is. The result is
/// checked against Convex's rules on values ([`validate_value`]).
///
/// ```
/// use keel_values::{obj, to_value, Int64, Value};
/// #[derive(serde::Serialize)]
/// struct Page { count: u32, total: Int64, title: &'static str }
/// let v = to_value(&Page { count: 3, total: Int64(7), title: "x" }).unwrap();
/// assert_eq!(v, obj! { "count" => 3.0, "total" => 7i64, "title" => "x" });
/// assert_eq!(to_value(&u64::MAX).unwrap_err().code(), "NotAConvexValue");
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, ConversionError> {
    let value = value.serialize(ValueSerializer)?;
    validate_value(&value)
        .map_err(|e| ConversionError::at(ConversionErrorKind::Value(e), String::new()))?;
    Ok(value)
}

/// Encodes a Rust value as function arguments: [`to_value`], which must give an object.
///
/// ```
/// use keel_values::{to_args, Value};
/// let args = to_args(&serde_json::json!({ "limit": 10 })).unwrap();
/// assert_eq!(args["limit"], Value::Float64(10.0));
/// assert_eq!(to_args(&5).unwrap_err().code(), "ArgumentsNotAnObject");
/// ```
pub fn to_args<T: Serialize + ?Sized>(args: &T) -> Result<Object, ConversionError> {
    match to_value(args)? {
        Value::Object(fields) => Ok(fields),
        other => Err(ConversionError::at(
            ConversionErrorKind::NotAnObject {
                found: other.type_name(),
            },
            String::new(),
        )),
    }
}

/// An error about a Rust value with no Convex counterpart.
pub(super) fn unrepresentable(message: String) -> ConversionError {
    ConversionError::at(
        ConversionErrorKind::Unrepresentable { message },
        String::new(),
    )
}

/// `.name`, or `["odd name"]`.
fn field_step(name: &str) -> String {
    step_text(Step::Field(name))
}

/// A whole number as a float64, if it is exact there.
fn whole_number(n: impl Into<i128> + Copy + std::fmt::Display) -> Result<Value, ConversionError> {
    let wide: i128 = n.into();
    if wide.unsigned_abs() <= u128::from(MAX_SAFE_INTEGER) {
        Ok(Value::Float64(wide as f64))
    } else {
        Err(beyond_safe_range(n))
    }
}

fn beyond_safe_range(n: impl std::fmt::Display) -> ConversionError {
    unrepresentable(format!(
        "The integer {n} is beyond ±2^53, the largest a float64 (a JavaScript number) holds \
         exactly; declare the field as keel_values::Int64 for a Convex int64."
    ))
}

impl ser::Error for ConversionError {
    fn custom<T: std::fmt::Display>(message: T) -> Self {
        unrepresentable(message.to_string())
    }
}

/// `serialize_*` methods for numbers that convert to a float64 exactly.
macro_rules! exact_float64 {
    ($($method:ident: $ty:ty),*) => {$(
        fn $method(self, v: $ty) -> Result<Value, ConversionError> {
            Ok(Value::Float64(v.into()))
        }
    )*};
}

/// `serialize_*` methods for integers that convert only within ±2⁵³.
macro_rules! whole_float64 {
    ($($method:ident: $ty:ty),*) => {$(
        fn $method(self, v: $ty) -> Result<Value, ConversionError> {
            whole_number(v)
        }
    )*};
}

/// Builds a [`Value`].
struct ValueSerializer;

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = ConversionError;
    type SerializeSeq = Items;
    type SerializeTuple = Items;
    type SerializeTupleStruct = Items;
    type SerializeTupleVariant = Variant<Items>;
    type SerializeMap = Fields;
    type SerializeStruct = Fields;
    type SerializeStructVariant = Variant<Fields>;

    fn serialize_bool(self, v: bool) -> Result<Value, ConversionError> {
        Ok(Value::Boolean(v))
    }

    // Integers up to 32 bits always fit a float64; wider ones while they are exact there.
    exact_float64!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32);
    exact_float64!(serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_f32: f32);
    whole_float64!(serialize_i64: i64, serialize_i128: i128, serialize_u64: u64);

    fn serialize_u128(self, v: u128) -> Result<Value, ConversionError> {
        match i128::try_from(v) {
            Ok(n) => whole_number(n),
            Err(_) => Err(beyond_safe_range(v)),
        }
    }

    fn serialize_f64(self, v: f64) -> Result<Value, ConversionError> {
        Ok(Value::Float64(v))
    }

    fn serialize_char(self, v: char) -> Result<Value, ConversionError> {
        Ok(Value::String(v.to_string()))
    }

    fn serialize_str(self, v: &str) -> Result<Value, ConversionError> {
        Ok(Value::String(v.to_owned()))
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<Value, ConversionError> {
        Ok(Value::Bytes(v.to_vec()))
    }

    fn serialize_none(self) -> Result<Value, ConversionError> {
        Ok(Value::Null)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, ConversionError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<Value, ConversionError> {
        Ok(Value::Null)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, ConversionError> {
        Ok(Value::Null)
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, ConversionError> {
        Ok(Value::String(variant.to_owned()))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value, ConversionError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, ConversionError> {
        let content = value
            .serialize(ValueSerializer)
            .map_err(|e| e.under(&field_step(variant)))?;
        Ok(Value::Object(Object::from([(variant.to_owned(), content)])))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Items, ConversionError> {
        Ok(Items(Vec::with_capacity(len.unwrap_or(0).min(4096))))
    }

    fn serialize_tuple(self, len: usize) -> Result<Items, ConversionError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Items, ConversionError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Variant<Items>, ConversionError> {
        Ok(Variant {
            name: variant,
            content: self.serialize_seq(Some(len))?,
        })
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Fields, ConversionError> {
        Ok(Fields {
            fields: Object::new(),
            key: None,
        })
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Fields, ConversionError> {
        self.serialize_map(Some(len))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Variant<Fields>, ConversionError> {
        Ok(Variant {
            name: variant,
            content: self.serialize_map(Some(len))?,
        })
    }
}

/// An array being built.
struct Items(Vec<Value>);

impl Items {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ConversionError> {
        let item = value
            .serialize(ValueSerializer)
            .map_err(|e| e.under(&step_text(Step::Index(self.0.len()))))?;
        self.0.push(item);
        Ok(())
    }
}

/// Sequences, tuples and tuple structs all build an array.
macro_rules! serialize_items {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Items {
            type Ok = Value;
            type Error = ConversionError;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Self::Error> {
                self.push(value)
            }

            fn end(self) -> Result<Value, ConversionError> {
                Ok(Value::Array(self.0))
            }
        }
    )*};
}

serialize_items!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field
);

/// An object being built.
struct Fields {
    fields: Object,
    /// The key of the entry whose value comes next (maps).
    key: Option<String>,
}

impl Fields {
    fn insert<T: Serialize + ?Sized>(
        &mut self,
        name: String,
        value: &T,
    ) -> Result<(), ConversionError> {
        let field = value
            .serialize(ValueSerializer)
            .map_err(|e| e.under(&field_step(&name)))?;
        self.fields.insert(name, field);
        Ok(())
    }

    /// The object; a one-field object `{"$integer" | "$float" | "$bytes": "<base64>"}` is the
    /// Convex-JSON form of a value with no plain JSON form (how a [`Value`] or an
    /// [`Int64`](crate::Int64) serializes itself) and becomes that value.
    fn finish(self) -> Result<Value, ConversionError> {
        let mut fields = self.fields;
        if fields.len() == 1
            && let Some(entry) = fields.first_entry()
            && matches!(entry.key().as_str(), "$integer" | "$float" | "$bytes")
            && let Value::String(_) = entry.get()
        {
            let (tag, Value::String(base64)) = entry.remove_entry() else {
                unreachable!("checked above");
            };
            let json = serde_json::Value::Object(serde_json::Map::from_iter([(
                tag,
                serde_json::Value::String(base64),
            )]));
            return from_json(&json)
                .map_err(|e| ConversionError::at(ConversionErrorKind::Value(e), String::new()));
        }
        Ok(Value::Object(fields))
    }
}

impl ser::SerializeMap for Fields {
    type Ok = Value;
    type Error = ConversionError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Self::Error> {
        self.key = Some(key.serialize(FieldName)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Self::Error> {
        let Some(name) = self.key.take() else {
            return Err(unrepresentable(
                "a map entry's value was given before its key".to_owned(),
            ));
        };
        self.insert(name, value)
    }

    fn end(self) -> Result<Value, ConversionError> {
        self.finish()
    }
}

impl ser::SerializeStruct for Fields {
    type Ok = Value;
    type Error = ConversionError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        self.insert(name.to_owned(), value)
    }

    fn end(self) -> Result<Value, ConversionError> {
        self.finish()
    }
}

/// An enum variant with content, written as `{ "<variant>": <content> }`.
struct Variant<C> {
    name: &'static str,
    content: C,
}

impl<C> Variant<C> {
    fn wrap(
        name: &'static str,
        content: Result<Value, ConversionError>,
    ) -> Result<Value, ConversionError> {
        let content = content.map_err(|e| e.under(&field_step(name)))?;
        Ok(Value::Object(Object::from([(name.to_owned(), content)])))
    }
}

impl ser::SerializeTupleVariant for Variant<Items> {
    type Ok = Value;
    type Error = ConversionError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Self::Error> {
        self.content
            .push(value)
            .map_err(|e| e.under(&field_step(self.name)))
    }

    fn end(self) -> Result<Value, ConversionError> {
        Self::wrap(self.name, Ok(Value::Array(self.content.0)))
    }
}

impl ser::SerializeStructVariant for Variant<Fields> {
    type Ok = Value;
    type Error = ConversionError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        self.content
            .insert(name.to_owned(), value)
            .map_err(|e| e.under(&field_step(self.name)))
    }

    fn end(self) -> Result<Value, ConversionError> {
        Self::wrap(self.name, self.content.finish())
    }
}
