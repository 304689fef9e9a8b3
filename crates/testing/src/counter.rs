//! The counter document (table `counters`, field `n`) that the test functions of several crates
//! read and bump.

use keel_backend::{DbReader, DbWriter, FunctionError};
use keel_values::{DocumentId, Object, Value};

/// The counter's document id (if it exists yet) and value (0 before the first bump).
///
/// # Errors
/// The read's [`FunctionError`].
pub async fn read(db: &DbReader) -> Result<(Option<DocumentId>, f64), FunctionError> {
    let doc = db.query("counters").first().await?;
    Ok(match doc {
        Some(doc) => (
            Some(doc.id),
            doc.fields.get("n").and_then(Value::as_f64).unwrap_or(0.0),
        ),
        None => (None, 0.0),
    })
}

/// Adds `by` to the counter in the mutation's transaction; returns the new value.
///
/// # Errors
/// The read's or write's [`FunctionError`].
pub async fn add(db: &DbWriter, by: f64) -> Result<f64, FunctionError> {
    let (id, n) = read(db).await?;
    let next = n + by;
    let fields = Object::from_iter([("n".to_owned(), Value::Float64(next))]);
    match id {
        Some(id) => db.patch(id, fields, &[]).await?,
        None => {
            db.insert("counters", fields).await?;
        }
    }
    Ok(next)
}
