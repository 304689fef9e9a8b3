//! The `messages` table (one string field, `body`) that the test functions of several crates
//! write and list.

use keel_backend::{DbReader, DbWriter, FunctionError};
use keel_db::Order;
use keel_values::{Object, Value};

/// Inserts a message in the mutation's transaction; returns its id as a string.
///
/// # Errors
/// The write's [`FunctionError`].
pub async fn send(db: &DbWriter, body: String) -> Result<String, FunctionError> {
    let fields = Object::from_iter([("body".to_owned(), Value::String(body))]);
    Ok(db.insert("messages", fields).await?.to_string())
}

/// The bodies of the first `limit` messages (all when `None`), oldest first.
///
/// # Errors
/// The read's [`FunctionError`].
pub async fn list(db: &DbReader, limit: Option<usize>) -> Result<Vec<String>, FunctionError> {
    let query = db.query("messages").order(Order::Asc);
    let docs = match limit {
        Some(limit) => query.take(limit).await?,
        None => query.collect().await?,
    };
    Ok(docs
        .iter()
        .filter_map(|d| d.fields.get("body").and_then(Value::as_str))
        .map(str::to_owned)
        .collect())
}
