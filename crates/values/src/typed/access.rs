//! How the deserializer hands out an object's fields, an array's elements and an enum's variant,
//! each with its place in the path.

use std::collections::btree_map;
use std::iter::Enumerate;
use std::slice;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, Visitor};

use super::de::{ExtraFields, ValueDeserializer};
use super::error::ConversionError;
use super::path::{Path, Step};
use crate::Value;

/// An object's fields, one by one.
pub(super) struct Fields<'de, 'p> {
    pub(super) iter: btree_map::Iter<'de, String, Value>,
    pub(super) pending: Option<(&'de str, &'de Value)>,
    pub(super) path: &'p Path<'p>,
    pub(super) extra_fields: ExtraFields,
    /// Whether these are the fields of a struct (rather than the entries of a map).
    pub(super) struct_fields: bool,
}

impl<'de> de::MapAccess<'de> for Fields<'de, '_> {
    type Error = ConversionError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ConversionError> {
        let Some((name, value)) = self.iter.next() else {
            return Ok(None);
        };
        self.pending = Some((name, value));
        seed.deserialize(BorrowedStrDeserializer::new(name))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ConversionError> {
        let Some((name, value)) = self.pending.take() else {
            return Err(de::Error::custom(
                "a field's value was asked for before its name",
            ));
        };
        let path = self.path.child(Step::Field(name));
        seed.deserialize(ValueDeserializer {
            value,
            path: &path,
            extra_fields: self.extra_fields,
            struct_field: self.struct_fields,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// An array's elements, one by one.
pub(super) struct Items<'de, 'p> {
    pub(super) iter: Enumerate<slice::Iter<'de, Value>>,
    pub(super) path: &'p Path<'p>,
    pub(super) extra_fields: ExtraFields,
}

impl<'de> de::SeqAccess<'de> for Items<'de, '_> {
    type Error = ConversionError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ConversionError> {
        let Some((index, value)) = self.iter.next() else {
            return Ok(None);
        };
        let path = self.path.child(Step::Index(index));
        seed.deserialize(ValueDeserializer {
            value,
            path: &path,
            extra_fields: self.extra_fields,
            struct_field: false,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// An enum variant written as `{ "<variant>": <content> }`.
pub(super) struct Variant<'de, 'p> {
    pub(super) name: &'de str,
    pub(super) value: &'de Value,
    pub(super) path: &'p Path<'p>,
    pub(super) extra_fields: ExtraFields,
}

impl<'de, 'p> de::EnumAccess<'de> for Variant<'de, 'p> {
    type Error = ConversionError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), ConversionError> {
        let variant = seed.deserialize(BorrowedStrDeserializer::new(self.name))?;
        Ok((variant, self))
    }
}

impl<'de> Variant<'de, '_> {
    fn content<T>(
        &self,
        decode: impl FnOnce(ValueDeserializer<'de, '_>) -> Result<T, ConversionError>,
    ) -> Result<T, ConversionError> {
        let path = self.path.child(Step::Field(self.name));
        decode(ValueDeserializer {
            value: self.value,
            path: &path,
            extra_fields: self.extra_fields,
            struct_field: false,
        })
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'de, '_> {
    type Error = ConversionError;

    fn unit_variant(self) -> Result<(), ConversionError> {
        self.content(|content| de::Deserializer::deserialize_unit(content, de::IgnoredAny))
            .map(|_| ())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, ConversionError> {
        self.content(|content| seed.deserialize(content))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, ConversionError> {
        self.content(|content| de::Deserializer::deserialize_tuple(content, len, visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ConversionError> {
        self.content(|content| de::Deserializer::deserialize_struct(content, "", fields, visitor))
    }
}
