//! Digests of query results: a page's live address carries one per query, for what the page
//! shows, so the live layer can tell whether the cache holds something newer.
//!
//! A value shared in this process (an `Arc<Value>`: one backend execution's result, which the
//! in-process sync sessions hand as is to every session it serves) is digested once for all of
//! them ([`shared_digest`]).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Weak};

use aws_lc_rs::digest;
use keel_client::{ClientError, QueryClient, QueryKey};
use keel_values::Value;
use parking_lot::Mutex;

/// A short digest of a query result (`e` for an error or no value).
pub(crate) fn digest(result: Option<Result<&Value, &ClientError>>) -> String {
    match result {
        Some(Ok(value)) => {
            let d = digest::digest(
                &digest::SHA256,
                keel_values::to_json_string(value).as_bytes(),
            );
            d.as_ref()[..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }
        Some(Err(_)) | None => "e".to_owned(),
    }
}

/// Digests of shared values by the value's address. An entry keeps a `Weak` of its value: while
/// that value lives no other value can have its address, so a hit is exact; entries of dropped
/// values are swept as the memo grows (it holds at most about twice the live shared values).
struct SharedDigests {
    entries: HashMap<usize, (Weak<Value>, String)>,
    /// The size at which dropped values' entries are swept next.
    sweep_at: usize,
}

/// Entries kept before the first sweep.
const MIN_SWEEP_AT: usize = 1024;

static SHARED_DIGESTS: LazyLock<Mutex<SharedDigests>> = LazyLock::new(|| {
    Mutex::new(SharedDigests {
        entries: HashMap::new(),
        sweep_at: MIN_SWEEP_AT,
    })
});

/// The [`digest`] of a shared value, computed once for every holder of the same `Arc`.
pub(crate) fn shared_digest(value: &Arc<Value>) -> String {
    let address = Arc::as_ptr(value) as usize;
    if let Some((known, d)) = SHARED_DIGESTS.lock().entries.get(&address)
        && known.strong_count() > 0
        && std::ptr::eq(known.as_ptr(), Arc::as_ptr(value))
    {
        return d.clone();
    }
    let computed = digest(Some(Ok(&**value)));
    let mut memo = SHARED_DIGESTS.lock();
    if memo.entries.len() >= memo.sweep_at {
        memo.entries
            .retain(|_, (known, _)| known.strong_count() > 0);
        memo.sweep_at = (memo.entries.len() * 2).max(MIN_SWEEP_AT);
    }
    memo.entries
        .insert(address, (Arc::downgrade(value), computed.clone()));
    computed
}

/// The digest of `key`'s current cache entry.
pub(crate) fn cached_digest(query_client: &QueryClient, key: &QueryKey) -> String {
    match query_client.get_entry(key) {
        Some(entry) => match (&entry.error, &entry.data) {
            (Some(error), _) => digest(Some(Err(error))),
            (None, Some(value)) => shared_digest(value),
            (None, None) => digest(None),
        },
        None => digest(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_values_are_digested_once_and_never_mistaken() {
        let value = Arc::new(Value::from("shared"));
        let first = shared_digest(&value);
        assert_eq!(first, digest(Some(Ok(&*value))));
        // A hit: the memo holds the same value's digest.
        assert_eq!(shared_digest(&value.clone()), first);
        // An equal value in another allocation gets the same digest; a different one its own,
        // even when it takes a dropped value's address.
        assert_eq!(shared_digest(&Arc::new(Value::from("shared"))), first);
        drop(value);
        for n in 0..2 * MIN_SWEEP_AT {
            let other = Arc::new(Value::from(format!("other {n}")));
            assert_eq!(shared_digest(&other), digest(Some(Ok(&*other))));
        }
        // Dropped values' entries were swept.
        assert!(SHARED_DIGESTS.lock().entries.len() <= 2 * MIN_SWEEP_AT);
    }

    #[test]
    fn digests_tell_values_apart() {
        let a = digest(Some(Ok(&Value::from("a"))));
        assert_eq!(a, digest(Some(Ok(&Value::from("a")))));
        assert_ne!(a, digest(Some(Ok(&Value::from("b")))));
        // int64 1 and float64 1 are different Convex values.
        assert_ne!(
            digest(Some(Ok(&Value::Int64(1)))),
            digest(Some(Ok(&Value::Float64(1.0))))
        );
        assert_eq!(digest(None), "e");
        assert_eq!(a.len(), 24);
    }
}
