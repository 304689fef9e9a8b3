//! One validator per table type, built on first use and kept for the life of the process.
//!
//! `T::document_validator()` builds a fresh tree of validators on every call; encoding a typed
//! document that holds a `None` needs it to tell "left out" from `null`, which made the
//! validator the biggest cost of writing such a document. Types are few and live as long as the
//! program, so each one's validator is built once and leaked.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use super::Table;
use crate::Validator;

type Cache = RwLock<HashMap<TypeId, &'static Validator>>;

/// The validator of `T`'s documents, built once per type.
pub(crate) fn document_validator_of<T: Table>() -> &'static Validator {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Cache::default);
    let key = TypeId::of::<T>();
    if let Some(found) = cache.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return found;
    }
    // Built outside the lock: a validator's construction may itself need another table's.
    let built = T::document_validator();
    let mut writer = cache.write().unwrap_or_else(|e| e.into_inner());
    writer
        .entry(key)
        .or_insert_with(|| Box::leak(Box::new(built)))
}
