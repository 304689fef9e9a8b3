//! Typed tables in functions (`ctx.db().table::<T>()`), called as a client calls them: typed
//! documents on the wire as plain documents, ids from clients checked against the table, typed
//! index ranges, typed patches, and a document that breaks the derived schema refused with
//! Convex's message and nothing written.

mod support;

use std::sync::Arc;

use keel_backend_core::{
    Backend, BackendConfig, FunctionError, FunctionRegistry, Identity, MutationCtx, QueryCtx,
};
use keel_db::{Database, Doc, Id, Schema, SqlitePersistence};
use keel_macros::Table;
use keel_values::{Value, obj};
use serde::{Deserialize, Serialize};
use support::{args, path};

#[derive(Clone, Debug, Serialize, Deserialize, Table)]
#[keel(crate = "keel_values", table = "lists")]
struct List {
    name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Table)]
#[serde(rename_all = "camelCase")]
#[keel(crate = "keel_values", table = "items", index(by_list_done = [list_id, done]))]
struct Item {
    list_id: Id<List>,
    text: String,
    done: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddArgs {
    list_id: Id<List>,
    text: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListArgs {
    list_id: String,
}

#[derive(Deserialize)]
struct IdArgs {
    id: String,
}

async fn create_list(ctx: MutationCtx, list: List) -> Result<Id<List>, FunctionError> {
    ctx.db().table::<List>().insert(&list).await
}

async fn add_item(ctx: MutationCtx, args: AddArgs) -> Result<Id<Item>, FunctionError> {
    let item = Item {
        list_id: args.list_id,
        text: args.text,
        done: false,
    };
    ctx.db().table::<Item>().insert(&item).await
}

/// Marks the item done; `null` when the id is no item's.
async fn finish(ctx: MutationCtx, args: IdArgs) -> Result<Option<Doc<Item>>, FunctionError> {
    let items = ctx.db().table::<Item>();
    let Some(id) = items.normalize_id(&args.id).await else {
        return Ok(None);
    };
    Ok(Some(items.patch(id, |item| item.done = true).await?))
}

async fn open_items(ctx: QueryCtx, args: ListArgs) -> Result<Vec<Doc<Item>>, FunctionError> {
    let Some(list) = ctx.db().table::<List>().normalize_id(&args.list_id).await else {
        return Ok(Vec::new());
    };
    ctx.db()
        .table::<Item>()
        .query()
        .with_index(Item::by_list_done, |q| q.eq(list).eq(false))
        .collect()
        .await
}

/// Writes an item without its `done` field, untyped: the table's derived validator refuses it.
async fn add_broken(ctx: MutationCtx, args: AddArgs) -> Result<Value, FunctionError> {
    let fields = obj! { "listId" => args.list_id.to_string(), "text" => args.text };
    let Value::Object(fields) = fields else {
        unreachable!()
    };
    ctx.db().insert("items", fields).await?;
    Ok(Value::Null)
}

fn functions() -> FunctionRegistry {
    let mut functions = FunctionRegistry::new();
    functions
        .mutation("lists:create", create_list)
        .mutation("items:add", add_item)
        .mutation("items:finish", finish)
        .mutation("items:addBroken", add_broken)
        .query("items:open", open_items);
    functions
}

async fn backend(dir: &tempfile::TempDir) -> Backend {
    let persistence = SqlitePersistence::open(dir.path().join("db.sqlite3")).expect("sqlite");
    let schema = Schema::new().table_of::<List>().table_of::<Item>();
    let db = Database::open(Arc::new(persistence), schema)
        .await
        .expect("database opens");
    Backend::new(db, functions(), BackendConfig::default())
}

async fn mutation(
    b: &Backend,
    name: &str,
    json: serde_json::Value,
) -> Result<Value, FunctionError> {
    b.run_mutation(&path(name), args(json), &Identity::Anonymous)
        .await
        .map(|(value, _)| value)
}

async fn query(b: &Backend, name: &str, json: serde_json::Value) -> Result<Value, FunctionError> {
    b.run_query(&path(name), &args(json), &Identity::Anonymous, None)
        .await
}

#[tokio::test]
async fn typed_documents_travel_as_plain_documents() {
    let dir = tempfile::tempdir().unwrap();
    let b = backend(&dir).await;
    let list = mutation(&b, "lists:create", serde_json::json!({ "name": "chores" }))
        .await
        .unwrap();
    let list = list.as_str().expect("an Id is its plain string").to_owned();
    let first = mutation(
        &b,
        "items:add",
        serde_json::json!({ "listId": list, "text": "a" }),
    )
    .await
    .unwrap();
    mutation(
        &b,
        "items:add",
        serde_json::json!({ "listId": list, "text": "b" }),
    )
    .await
    .unwrap();
    let done = mutation(&b, "items:finish", serde_json::json!({ "id": first }))
        .await
        .unwrap();
    let done = done.as_object().expect("the patched document");
    assert_eq!(done["done"], Value::Boolean(true));
    assert_eq!(done["_id"], first);
    assert!(matches!(done["_creationTime"], Value::Float64(_)));

    let open = query(&b, "items:open", serde_json::json!({ "listId": list }))
        .await
        .unwrap();
    let Value::Array(open) = open else {
        panic!("a list of documents, not {open:?}")
    };
    assert_eq!(open.len(), 1);
    let item = open[0].as_object().unwrap();
    assert_eq!(item["text"], Value::from("b"));
    assert_eq!(item["listId"], Value::from(list.as_str()));
    assert_eq!(
        item.keys().map(String::as_str).collect::<Vec<_>>(),
        ["_creationTime", "_id", "done", "listId", "text"]
    );
    // Another table's id, or no id at all, finds nothing.
    for other in [first.as_str().unwrap(), "not an id"] {
        let none = query(&b, "items:open", serde_json::json!({ "listId": other }))
            .await
            .unwrap();
        assert_eq!(none, Value::Array(Vec::new()));
    }
    let none = mutation(&b, "items:finish", serde_json::json!({ "id": list }))
        .await
        .unwrap();
    assert_eq!(none, Value::Null);
}

#[tokio::test]
async fn hostile_ids_and_documents_that_break_the_schema_are_refused_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let b = backend(&dir).await;
    let list = mutation(&b, "lists:create", serde_json::json!({ "name": "chores" }))
        .await
        .unwrap();
    let list = list.as_str().unwrap().to_owned();
    // An argument that is no id at all is refused by the argument's type.
    let err = mutation(
        &b,
        "items:add",
        serde_json::json!({ "listId": "x", "text": "a" }),
    )
    .await
    .unwrap_err();
    assert!(
        err.client_message().contains("Path: .listId"),
        "{}",
        err.client_message()
    );
    // An id, but of the wrong table: `v.id("lists")` in the derived validator refuses it.
    let item = mutation(
        &b,
        "items:add",
        serde_json::json!({ "listId": list, "text": "a" }),
    )
    .await
    .unwrap();
    let err = mutation(
        &b,
        "items:add",
        serde_json::json!({ "listId": item, "text": "b" }),
    )
    .await
    .unwrap_err();
    let message = err.client_message();
    assert!(
        message.contains("Failed to insert or update a document in table \"items\" because it does not match the schema")
            && message.contains("Path: .listId")
            && message.contains("Validator: v.id(\"lists\")"),
        "{message}"
    );
    // A document missing a field, written untyped.
    let err = mutation(
        &b,
        "items:addBroken",
        serde_json::json!({ "listId": list, "text": "c" }),
    )
    .await
    .unwrap_err();
    let message = err.client_message();
    assert!(
        message.contains("Object is missing the required field `done`"),
        "{message}"
    );
    let mut tx = b.database().begin();
    let items = tx.table::<Item>().query().collect().await.unwrap();
    assert_eq!(
        items.iter().map(|i| i.text.as_str()).collect::<Vec<_>>(),
        ["a"],
        "nothing refused was written"
    );
}
