//! Typed tables (`#[derive(Table)]`, `Transaction::table`): typed insert, get, patch, replace,
//! delete, queries and index ranges, and the schema validation the derived validator enforces,
//! on real SQLite files (and once on PostgreSQL).

use std::sync::Arc;

use keel_db::persistence::PostgresTestSchema;
use keel_db::{Database, DbError, Doc, Id, Order, PaginationOptions, Schema, SqlitePersistence};
use keel_macros::{FieldValidator, Table};
use keel_values::table::Table as _;
use keel_values::{Int64, Value, obj};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Table)]
#[keel(crate = "keel_values", table = "users", index(by_name = [name]))]
struct User {
    name: String,
    age: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, FieldValidator)]
#[keel(crate = "keel_values")]
struct Meta {
    draft: bool,
    #[serde(rename = "wordCount")]
    words: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Table)]
#[serde(rename_all = "camelCase")]
#[keel(
    crate = "keel_values",
    table = "posts",
    index(by_author = [author_id]),
    index(by_author_likes = [author_id, likes]),
    index(by_image = [image_id])
)]
struct Post {
    title: String,
    author_id: Id<User>,
    likes: u64,
    image_id: Option<String>,
    tags: Vec<String>,
    meta: Meta,
    views: Int64,
}

/// A table declared without a validator, read through a type its documents may not match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Table)]
#[keel(crate = "keel_values", table = "legacy")]
struct Legacy {
    n: f64,
}

fn schema() -> Schema {
    Schema::new()
        .table_of::<User>()
        .table_of::<Post>()
        .table("legacy", keel_db::TableSchema::new())
}

async fn sqlite() -> (Database, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let persistence = SqlitePersistence::open(dir.path().join("db.sqlite3")).unwrap();
    let db = Database::open(Arc::new(persistence), schema())
        .await
        .unwrap();
    (db, dir)
}

fn post(title: &str, author: Id<User>, likes: u64) -> Post {
    Post {
        title: title.into(),
        author_id: author,
        likes,
        image_id: None,
        tags: vec!["rust".into()],
        meta: Meta {
            draft: false,
            words: 3,
        },
        views: Int64(0),
    }
}

async fn add_user(db: &Database, name: &str) -> Id<User> {
    let mut tx = db.begin();
    let id = tx
        .table::<User>()
        .insert(&User {
            name: name.into(),
            age: None,
        })
        .await
        .unwrap();
    db.commit(tx).await.unwrap();
    id
}

#[test]
fn the_derive_declares_the_table() {
    assert_eq!(Post::NAME, "posts");
    assert_eq!(
        Post::INDEXES,
        &[
            ("by_author", &["authorId"][..]),
            ("by_author_likes", &["authorId", "likes"][..]),
            ("by_image", &["imageId"][..]),
        ]
    );
    assert_eq!(
        Post::document_validator().describe(),
        "v.object({authorId: v.id(\"users\"), imageId: v.optional(v.string()), likes: \
         v.float64(), meta: v.object({draft: v.boolean(), wordCount: v.float64()}), tags: \
         v.array(v.string()), title: v.string(), views: v.int64()})"
    );
    let schema = schema();
    let posts = schema.table_schema("posts").unwrap();
    assert_eq!(posts.indexes().len(), 3);
    assert_eq!(posts.indexes()[1].fields, vec!["authorId", "likes"]);
    assert!(posts.document_validator().is_some());
}

#[tokio::test]
async fn typed_insert_get_patch_replace_delete() {
    let (db, _dir) = sqlite().await;
    let ann = add_user(&db, "ann").await;

    let mut tx = db.begin();
    let id = tx.table::<Post>().insert(&post("a", ann, 1)).await.unwrap();
    let doc: Doc<Post> = tx.table::<Post>().get(id).await.unwrap().unwrap();
    assert_eq!(doc.id, id);
    assert_eq!(doc.fields, post("a", ann, 1));
    assert_eq!(doc.title, "a", "a Doc reads its fields through Deref");
    assert!(doc.creation_time > 0.0);
    // The stored document is the plain Convex document: camelCase names, no absent field, the
    // id as its string.
    let stored = tx.get(id.untyped()).await.unwrap().unwrap();
    assert_eq!(
        Value::Object(stored.fields.clone()),
        obj! {
            "title" => "a", "authorId" => ann.to_string(), "likes" => 1.0,
            "tags" => vec![Value::from("rust")],
            "meta" => obj! { "draft" => false, "wordCount" => 3.0 },
            "views" => Int64(0).0,
        }
    );
    db.commit(tx).await.unwrap();

    let mut tx = db.begin();
    let patched = tx
        .table::<Post>()
        .patch(id, |p| {
            p.title = "b".into();
            p.image_id = Some("img".into());
        })
        .await
        .unwrap();
    assert_eq!(patched.title, "b");
    let stored = tx.get(id.untyped()).await.unwrap().unwrap();
    assert_eq!(stored.fields["imageId"], Value::from("img"));
    tx.table::<Post>()
        .patch(id, |p| p.image_id = None)
        .await
        .unwrap();
    let stored = tx.get(id.untyped()).await.unwrap().unwrap();
    assert!(
        !stored.fields.contains_key("imageId"),
        "patching an optional field to None removes it"
    );
    db.commit(tx).await.unwrap();

    let mut tx = db.begin();
    let mut replacement = post("c", ann, 7);
    replacement.tags.clear();
    tx.table::<Post>().replace(id, &replacement).await.unwrap();
    db.commit(tx).await.unwrap();
    let mut tx = db.begin();
    let doc = tx.table::<Post>().get(id).await.unwrap().unwrap();
    assert_eq!(doc.fields, replacement);
    assert_eq!(doc.creation_time, patched.creation_time);

    // Ids of another table: a typed get finds nothing, writes find no document.
    let wrong: Id<Post> = Id::from_untyped(ann.untyped());
    assert!(tx.table::<Post>().get(wrong).await.unwrap().is_none());
    assert!(matches!(
        tx.table::<Post>().delete(wrong).await,
        Err(DbError::DocumentNotFound(_))
    ));
    assert!(matches!(
        tx.table::<Post>().replace(wrong, &replacement).await,
        Err(DbError::DocumentNotFound(_))
    ));
    assert_eq!(tx.table::<Post>().normalize_id(&id.to_string()), Some(id));
    assert_eq!(tx.table::<Post>().normalize_id(&ann.to_string()), None);
    assert_eq!(tx.table::<Post>().normalize_id("not an id"), None);

    tx.table::<Post>().delete(id).await.unwrap();
    assert!(tx.table::<Post>().get(id).await.unwrap().is_none());
    db.commit(tx).await.unwrap();
    let mut tx = db.begin();
    assert!(tx.table::<Post>().get(id).await.unwrap().is_none());
    assert!(matches!(
        tx.table::<Post>().patch(id, |p| p.likes += 1).await,
        Err(DbError::DocumentNotFound(_))
    ));
}

#[tokio::test]
async fn typed_queries_and_index_ranges() {
    let (db, _dir) = sqlite().await;
    let ann = add_user(&db, "ann").await;
    let bob = add_user(&db, "bob").await;
    let mut tx = db.begin();
    for likes in 0..6 {
        let mut p = post(&format!("ann {likes}"), ann, likes);
        if likes == 3 {
            p.image_id = Some("img".into());
        }
        tx.table::<Post>().insert(&p).await.unwrap();
    }
    tx.table::<Post>()
        .insert(&post("bob", bob, 4))
        .await
        .unwrap();
    db.commit(tx).await.unwrap();

    let mut tx = db.begin();
    let all = tx.table::<Post>().query().collect().await.unwrap();
    assert_eq!(all.len(), 7);
    let bobs = tx
        .table::<Post>()
        .query()
        .with_index(Post::by_author, |q| q.eq(bob))
        .collect()
        .await
        .unwrap();
    assert_eq!(
        bobs.iter().map(|p| p.title.as_str()).collect::<Vec<_>>(),
        ["bob"]
    );
    let middle = tx
        .table::<Post>()
        .query()
        .with_index(Post::by_author_likes, |q| q.eq(ann).gte(2u64).lt(5u64))
        .order(Order::Desc)
        .collect()
        .await
        .unwrap();
    assert_eq!(
        middle.iter().map(|p| p.likes).collect::<Vec<_>>(),
        [4, 3, 2]
    );
    let exact = tx
        .table::<Post>()
        .query()
        .with_index(Post::by_author_likes, |q| q.eq(ann).eq(5u64))
        .unique()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exact.title, "ann 5");
    let with_image = tx
        .table::<Post>()
        .query()
        .with_index(Post::by_image, |q| q.eq(Some("img".to_owned())))
        .collect()
        .await
        .unwrap();
    assert_eq!(with_image.len(), 1);
    // `None` of an optional field matches the documents without it.
    let without_image = tx
        .table::<Post>()
        .query()
        .with_index(Post::by_image, |q| q.eq(None))
        .take(10)
        .await
        .unwrap();
    assert_eq!(without_image.len(), 6);
    let first = tx
        .table::<Post>()
        .query()
        .with_index(Post::by_author, |q| q.eq(ann))
        .first()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.title, "ann 0");
    let page = tx
        .table::<Post>()
        .query()
        .with_index(Post::by_author, |q| q.eq(ann))
        .order(Order::Desc)
        .paginate(PaginationOptions::first(4))
        .await
        .unwrap();
    assert_eq!(page.page.len(), 4);
    assert_eq!(page.page[0].title, "ann 5");
    assert!(!page.is_done);
    // Several matches for unique.
    let err = tx
        .table::<Post>()
        .query()
        .with_index(Post::by_author, |q| q.eq(ann))
        .unique()
        .await
        .unwrap_err();
    assert_eq!(err.code(), "UniqueMoreThanOne");
    // A value with no Convex counterpart is a clear error, not a wrong range.
    let err = tx
        .table::<Post>()
        .query()
        .with_index(Post::by_author_likes, |q| q.eq(ann).eq(u64::MAX))
        .collect()
        .await
        .unwrap_err();
    assert_eq!(err.code(), "InvalidIndexRange", "{err}");
    assert!(err.to_string().contains("\"likes\""), "{err}");
}

#[tokio::test]
async fn schema_validation_refuses_bad_documents_and_writes_nothing() {
    let (db, _dir) = sqlite().await;
    let ann = add_user(&db, "ann").await;
    let mut tx = db.begin();
    let good = || {
        let mut fields = keel_values::table::to_fields(&post("t", ann, 1)).unwrap();
        fields.remove("views");
        fields.insert("views".into(), Value::Int64(0));
        fields
    };
    // Wrong type.
    let mut wrong_type = good();
    wrong_type.insert("title".into(), Value::Float64(5.0));
    let err = tx.insert("posts", wrong_type).await.unwrap_err();
    assert!(
        matches!(&err, DbError::Validation { table, path, .. } if table == "posts" && path == ".title"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "SchemaValidationFailed: Failed to insert or update a document in table \"posts\" \
         because it does not match the schema: Value does not match validator.\nPath: \
         .title\nValue: 5\nValidator: v.string()"
    );
    // Missing field.
    let mut missing = good();
    missing.remove("title");
    let err = tx.insert("posts", missing).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("Object is missing the required field `title`."),
        "{err}"
    );
    // Extra field.
    let mut extra = good();
    extra.insert("subtitle".into(), "x".into());
    let err = tx.insert("posts", extra).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("Object contains extra field `subtitle` that is not in the validator."),
        "{err}"
    );
    // An id of another table where `v.id("users")` is declared, through the typed insert.
    let ok = tx
        .table::<Post>()
        .insert(&post("ok", ann, 1))
        .await
        .unwrap();
    let not_a_user: Id<User> = Id::from_untyped(ok.untyped());
    let err = tx
        .table::<Post>()
        .insert(&post("bad", not_a_user, 1))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("Path: .authorId\nValue: \"")
            && err.to_string().contains("Validator: v.id(\"users\")"),
        "{err}"
    );
    // A patch that breaks the schema, untyped.
    let err = tx
        .patch(
            ok.untyped(),
            keel_values::Object::from([("likes".to_owned(), Value::from("many"))]),
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DbError::Validation { path, .. } if path == ".likes"),
        "{err}"
    );
    tx.table::<Post>().delete(ok).await.unwrap();
    db.commit(tx).await.unwrap();
    let mut tx = db.begin();
    assert!(
        tx.table::<Post>()
            .query()
            .collect()
            .await
            .unwrap()
            .is_empty(),
        "nothing refused was written"
    );
}

#[tokio::test]
async fn a_stored_document_that_does_not_fit_its_type_is_a_clear_error() {
    let (db, _dir) = sqlite().await;
    let mut tx = db.begin();
    let id = tx
        .insert(
            "legacy",
            obj! { "n" => "not a number" }.as_object().unwrap().clone(),
        )
        .await
        .unwrap();
    let err = tx
        .table::<Legacy>()
        .get(Id::from_untyped(id))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "DocumentTypeMismatch");
    assert!(err.to_string().contains("table \"legacy\""), "{err}");
    assert!(err.to_string().contains("Path: .n"), "{err}");
    let err = tx.table::<Legacy>().query().collect().await.unwrap_err();
    assert_eq!(err.code(), "DocumentTypeMismatch");
}

#[tokio::test]
async fn typed_tables_on_postgres() {
    let pg = PostgresTestSchema::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let persistence = pg.connect().await.unwrap_or_else(|e| panic!("{e}"));
    let db = Database::open(Arc::new(persistence), schema())
        .await
        .unwrap();
    let ann = add_user(&db, "ann").await;
    let mut tx = db.begin();
    let id = tx
        .table::<Post>()
        .insert(&post("pg", ann, 2))
        .await
        .unwrap();
    db.commit(tx).await.unwrap();
    let mut tx = db.begin();
    tx.table::<Post>().patch(id, |p| p.likes = 3).await.unwrap();
    db.commit(tx).await.unwrap();
    let mut tx = db.begin();
    let found = tx
        .table::<Post>()
        .query()
        .with_index(Post::by_author_likes, |q| q.eq(ann).gt(2u64))
        .collect()
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, id);
    assert_eq!(found[0].likes, 3);
    let err = tx
        .insert("users", obj! { "name" => 1.0 }.as_object().unwrap().clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "SchemaValidationFailed");
    drop(tx);
    db.shutdown().await;
}
