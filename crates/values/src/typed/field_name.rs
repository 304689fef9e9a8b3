//! The names of object fields a map serializes: strings, or what reads as one.

use serde::ser::{Impossible, Serialize, Serializer};

use super::error::ConversionError;
use super::ser::unrepresentable;

/// Object field names: strings, or what reads as one (a char, an integer, a unit variant), as
/// `serde_json` allows.
pub(super) struct FieldName;

/// `serialize_*` methods for keys written out as text (`1` → `"1"`), as `serde_json` does.
macro_rules! written_out {
    ($($method:ident: $ty:ty),*) => {$(
        fn $method(self, v: $ty) -> Result<String, ConversionError> {
            Ok(v.to_string())
        }
    )*};
}

impl FieldName {
    fn refuse(kind: &str) -> ConversionError {
        unrepresentable(format!("Object field names must be strings, not {kind}."))
    }
}

impl Serializer for FieldName {
    type Ok = String;
    type Error = ConversionError;
    type SerializeSeq = Impossible<String, ConversionError>;
    type SerializeTuple = Impossible<String, ConversionError>;
    type SerializeTupleStruct = Impossible<String, ConversionError>;
    type SerializeTupleVariant = Impossible<String, ConversionError>;
    type SerializeMap = Impossible<String, ConversionError>;
    type SerializeStruct = Impossible<String, ConversionError>;
    type SerializeStructVariant = Impossible<String, ConversionError>;

    written_out!(serialize_bool: bool, serialize_char: char);
    written_out!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64);
    written_out!(serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64);
    written_out!(serialize_i128: i128, serialize_u128: u128);
    fn serialize_f32(self, _v: f32) -> Result<String, ConversionError> {
        Err(Self::refuse("a float"))
    }
    fn serialize_f64(self, _v: f64) -> Result<String, ConversionError> {
        Err(Self::refuse("a float"))
    }
    fn serialize_str(self, v: &str) -> Result<String, ConversionError> {
        Ok(v.to_owned())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<String, ConversionError> {
        Err(Self::refuse("bytes"))
    }
    fn serialize_none(self) -> Result<String, ConversionError> {
        Err(Self::refuse("None"))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<String, ConversionError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<String, ConversionError> {
        Err(Self::refuse("()"))
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<String, ConversionError> {
        Err(Self::refuse(name))
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<String, ConversionError> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<String, ConversionError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<String, ConversionError> {
        Err(Self::refuse(name))
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, ConversionError> {
        Err(Self::refuse("a sequence"))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, ConversionError> {
        Err(Self::refuse("a tuple"))
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, ConversionError> {
        Err(Self::refuse(name))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, ConversionError> {
        Err(Self::refuse(name))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, ConversionError> {
        Err(Self::refuse("a map"))
    }
    fn serialize_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, ConversionError> {
        Err(Self::refuse(name))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, ConversionError> {
        Err(Self::refuse(name))
    }
}
