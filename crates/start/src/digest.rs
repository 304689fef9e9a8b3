//! Digests of query results: a page's live address carries one per query, for what the page
//! shows, so the live layer can tell whether the cache holds something newer.

use aws_lc_rs::digest;
use keel_client::{ClientError, QueryClient, QueryKey};
use keel_values::Value;

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

/// The digest of `key`'s current cache entry.
pub(crate) fn cached_digest(query_client: &QueryClient, key: &QueryKey) -> String {
    match query_client.get_entry(key) {
        Some(entry) => match (&entry.error, &entry.data) {
            (Some(error), _) => digest(Some(Err(error))),
            (None, Some(value)) => digest(Some(Ok(&**value))),
            (None, None) => digest(None),
        },
        None => digest(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
