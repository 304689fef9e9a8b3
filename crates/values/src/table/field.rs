//! [`FieldValidator`]: the Convex validator a Rust type stands for, as a document field.

use std::collections::{BTreeMap, HashMap};

use crate::{Int64, Validator, Value};

/// The Convex validator a Rust type stands for in a typed document (the same mapping as
/// [`crate::typed`]'s conversions). `#[derive(Table)]` and `#[derive(FieldValidator)]` build a
/// struct's `v.object({...})` from its fields' implementations; a type without one cannot be a
/// field of a typed document (a compile error).
///
/// ```
/// use keel_values::table::FieldValidator;
/// use keel_values::Validator;
/// assert_eq!(<Vec<Option<u32>>>::validator().describe(), "v.array(v.union(v.float64(), v.null()))");
/// assert_eq!(<Option<String>>::field_validator().describe(), "v.optional(v.string())");
/// ```
pub trait FieldValidator {
    /// The validator of a value of this type.
    fn validator() -> Validator;

    /// The validator of an object field of this type: [`FieldValidator::validator`], except for
    /// `Option<T>`, which is an optional field (`v.optional(T)`: a `None` is left out).
    fn field_validator() -> Validator {
        Self::validator()
    }
}

macro_rules! simple {
    ($validator:ident: $($ty:ty),*) => {$(
        impl FieldValidator for $ty {
            fn validator() -> Validator {
                Validator::$validator
            }
        }
    )*};
}

simple!(String: String, char);
simple!(Boolean: bool);
simple!(Float64: f64, f32, u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);
simple!(Int64: Int64);
simple!(Null: ());
simple!(Any: Value, serde_json::Value);

impl<T: FieldValidator> FieldValidator for Option<T> {
    fn validator() -> Validator {
        let inner = T::validator();
        if inner.accepts_null() {
            inner
        } else {
            Validator::Union(vec![inner, Validator::Null])
        }
    }

    fn field_validator() -> Validator {
        Validator::optional(T::validator())
    }
}

impl<T: FieldValidator> FieldValidator for Vec<T> {
    fn validator() -> Validator {
        Validator::array(T::validator())
    }
}

impl<T: FieldValidator + ?Sized> FieldValidator for Box<T> {
    fn validator() -> Validator {
        T::validator()
    }

    fn field_validator() -> Validator {
        T::field_validator()
    }
}

impl<T: FieldValidator> FieldValidator for BTreeMap<String, T> {
    fn validator() -> Validator {
        Validator::record(T::validator())
    }
}

impl<T: FieldValidator, S> FieldValidator for HashMap<String, T, S> {
    fn validator() -> Validator {
        Validator::record(T::validator())
    }
}
