//! Snapshot export and import: the ZIP's layout, a SQLite → PostgreSQL round trip that keeps
//! ids, creation times, values and stored files, the import modes, a subscriber seeing an
//! import, and every kind of malformed ZIP refused with nothing changed.

mod support;

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use keel_db::blobs::{BlobKey, BlobStore, LocalBlobStore};
use keel_db::snapshot::{
    ExportOptions, ImportLimits, ImportMode, ImportOptions, STORAGE_KEY_FIELD, SnapshotError,
};
use keel_db::{Database, Document, STORAGE_TABLE};
use keel_values::{Object, Value, obj};
use sha2::Digest;
use support::{Store, fields, fresh, fresh_on};

const USER_TABLES: [&str; 4] = ["posts", "users", "counters", "accounts"];

/// Stores `bytes` as a file: its blob and its `_storage` document.
async fn store_file(db: &Database, blobs: &LocalBlobStore, bytes: &'static [u8], kind: &str) {
    let key = BlobKey::generate();
    let chunks = futures::stream::iter([Ok(Bytes::from_static(bytes))]).boxed();
    blobs.put(&key, chunks).await.unwrap();
    let sha = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(bytes));
    let mut tx = db.begin();
    tx.system_insert(
        STORAGE_TABLE,
        fields(obj! {
            STORAGE_KEY_FIELD => key.to_string(),
            "size" => bytes.len() as i64,
            "sha256" => sha,
            "contentType" => kind,
        }),
    )
    .await
    .unwrap();
    db.commit(tx).await.unwrap();
}

/// Posts and users with every kind of value, and two stored files.
async fn fill(db: &Database, blobs: &LocalBlobStore) {
    let mut tx = db.begin();
    let ann = tx
        .insert("users", fields(obj! { "name" => "ann", "age" => 41.0 }))
        .await
        .unwrap();
    for i in 0..1_200i64 {
        tx.insert(
            "posts",
            fields(obj! {
                "author" => ann.to_string(),
                "likes" => i,
                "score" => i as f64,
                "ratio" => 0.1 * i as f64,
                "raw" => vec![i as u8, 0, 255],
                "odd" => if i % 2 == 1 { Value::Float64(f64::NAN) } else { Value::Float64(-0.0) },
                "tags" => Value::Array(vec![Value::from("a"), Value::Null, Value::Boolean(true)]),
                "meta" => obj! { "big" => i64::MAX, "inf" => f64::INFINITY },
            }),
        )
        .await
        .unwrap();
    }
    db.commit(tx).await.unwrap();
    store_file(db, blobs, b"\x89PNG not really an image", "image/png").await;
    store_file(db, blobs, b"plain words", "text/plain").await;
}

/// Every document of the user tables and `_storage` (without the blob key, which an import
/// chooses anew), by table.
async fn dump(db: &Database) -> BTreeMap<String, Vec<Document>> {
    let mut out = BTreeMap::new();
    let mut tx = db.begin();
    for table in USER_TABLES {
        out.insert(table.to_owned(), tx.query(table).collect().await.unwrap());
    }
    let mut files = tx.system_query(STORAGE_TABLE).collect().await.unwrap();
    for file in &mut files {
        file.fields.remove(STORAGE_KEY_FIELD);
    }
    out.insert(STORAGE_TABLE.to_owned(), files);
    out
}

/// Values compared with NaN equal to itself and −0 apart from +0 (what "lossless" means).
fn same(a: &BTreeMap<String, Vec<Document>>, b: &BTreeMap<String, Vec<Document>>) -> bool {
    let text = |m: &BTreeMap<String, Vec<Document>>| {
        m.iter()
            .map(|(t, docs)| {
                let docs: Vec<String> = docs
                    .iter()
                    .map(|d| keel_values::to_json(&d.to_value()).to_string())
                    .collect();
                format!("{t}: {docs:?}")
            })
            .collect::<Vec<_>>()
    };
    text(a) == text(b)
}

async fn export(db: &Database, blobs: Option<Arc<dyn BlobStore>>) -> Bytes {
    let mut out = Vec::new();
    db.export_snapshot(
        &mut out,
        ExportOptions {
            file_storage: blobs,
        },
    )
    .await
    .unwrap();
    Bytes::from(out)
}

fn entries(zip: &Bytes) -> Vec<(String, String)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip.clone())).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).unwrap();
            let mut text = Vec::new();
            file.read_to_end(&mut text).unwrap();
            (
                file.name().unwrap().into_owned(),
                String::from_utf8_lossy(&text).into_owned(),
            )
        })
        .collect()
}

fn zip_of(entries: &[(&str, &[u8])]) -> Bytes {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        writer.start_file(*name, options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    Bytes::from(writer.finish().unwrap().into_inner())
}

#[tokio::test]
async fn export_writes_convex_snapshot_layout() {
    let t = fresh().await;
    let blobs = LocalBlobStore::new(t.dir.path().join("blobs"));
    fill(&t.db, &blobs).await;
    let zip = export(&t.db, Some(Arc::new(blobs))).await;

    let mut archive = zip::ZipArchive::new(Cursor::new(zip.clone())).unwrap();
    for i in 0..archive.len() {
        let file = archive.by_index(i).unwrap();
        assert_eq!(file.compression(), zip::CompressionMethod::Deflated);
        assert_eq!(file.unix_mode().map(|m| m & 0o777), Some(0o644));
    }
    let entries = entries(&zip);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[0], "README.md");
    assert_eq!(names[1], "_tables/documents.jsonl");
    let tables: Vec<serde_json::Value> = entries[1]
        .1
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The schema's tables are numbered by name from 10001.
    assert_eq!(
        tables
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["accounts", "counters", "posts", "users"],
        "user tables only, in table-number order"
    );
    let numbers: Vec<u64> = tables.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [10001, 10002, 10003, 10004]);
    let find = |name: &str| &entries.iter().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(find("posts/generated_schema.jsonl").trim(), "\"uniform\"");
    let posts: Vec<serde_json::Value> = find("posts/documents.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(posts.len(), 1_200, "every page written");
    let ids: Vec<&str> = posts.iter().map(|p| p["_id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_by_key(|id| id.parse::<keel_values::DocumentId>().unwrap().internal);
    assert_eq!(ids, sorted, "documents in _id order");
    let line = find("posts/documents.jsonl").lines().nth(3).unwrap();
    let likes = posts[3]["likes"].as_i64().unwrap();
    assert!(
        line.contains(&format!("\"likes\":{likes},")),
        "int64 is a JSON integer: {line}"
    );
    assert!(
        line.contains(&format!("\"score\":{likes}.0")),
        "float64 keeps its point: {line}"
    );
    assert!(line.contains("\"raw\":{\"$bytes\":"), "{line}");
    assert!(line.contains("\"inf\":{\"$float\":"), "{line}");

    let storage: Vec<serde_json::Value> = find("_storage/documents.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(storage.len(), 2);
    for file in &storage {
        for field in [
            "_id",
            "_creationTime",
            "sha256",
            "size",
            "contentType",
            "internalId",
        ] {
            assert!(file.get(field).is_some(), "{field} in {file}");
        }
    }
    let png = storage
        .iter()
        .find(|f| f["contentType"] == "image/png")
        .unwrap();
    let png_entry = format!("_storage/{}.png", png["_id"].as_str().unwrap());
    assert_eq!(find(&png_entry), "\u{FFFD}PNG not really an image");
    let storage_at = names
        .iter()
        .position(|n| *n == "_storage/documents.jsonl")
        .unwrap();
    assert!(names.iter().position(|n| *n == png_entry).unwrap() > storage_at);
}

#[tokio::test]
async fn sqlite_export_imports_into_postgres_unchanged() {
    let source = fresh().await;
    let source_blobs = LocalBlobStore::new(source.dir.path().join("blobs"));
    fill(&source.db, &source_blobs).await;
    let zip = export(&source.db, Some(Arc::new(source_blobs))).await;

    let target = fresh_on(Store::Postgres).await;
    let target_blobs = Arc::new(LocalBlobStore::new(target.dir.path().join("blobs")));
    let summary = target
        .db
        .import_snapshot(
            zip,
            ImportOptions {
                file_storage: Some(target_blobs.clone()),
                ..ImportOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(summary.files, 2);
    assert!(summary.tables.contains(&("posts".to_owned(), 1_200)));

    let (before, after) = (dump(&source.db).await, dump(&target.db).await);
    assert_eq!(after["posts"].len(), 1_200);
    assert!(
        same(&before, &after),
        "ids, creation times and values survive"
    );

    // Indexes work on the imported documents, and the files' bytes are there.
    let mut tx = target.db.begin();
    let ann = tx.query("users").first().await.unwrap().unwrap();
    let by_author = tx
        .query("posts")
        .with_index("by_author_likes", |r| {
            r.eq("author", ann.id.to_string()).gte("likes", 1_000i64)
        })
        .collect()
        .await
        .unwrap();
    assert_eq!(by_author.len(), 200);
    let files = tx.system_query(STORAGE_TABLE).collect().await.unwrap();
    let key = BlobKey::parse(files[0].fields[STORAGE_KEY_FIELD].as_str().unwrap()).unwrap();
    let mut bytes = Vec::new();
    let mut chunks = target_blobs.get(&key, None).await.unwrap().unwrap();
    while let Some(chunk) = chunks.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    assert!(bytes == b"\x89PNG not really an image" || bytes == b"plain words");

    // New inserts after the import get fresh ids in the same tables.
    let mut tx = target.db.begin();
    let id = tx
        .insert("posts", fields(obj! { "author" => "bob" }))
        .await
        .unwrap();
    assert_eq!(id.table, after["posts"][0].id.table);
    target.db.commit(tx).await.unwrap();
}

#[tokio::test]
async fn import_modes_refuse_replace_and_append() {
    let source = fresh().await;
    let mut tx = source.db.begin();
    for i in 0..3i64 {
        tx.insert(
            "counters",
            fields(obj! { "name" => format!("c{i}"), "value" => i }),
        )
        .await
        .unwrap();
    }
    source.db.commit(tx).await.unwrap();
    let zip = export(&source.db, None).await;

    let target = fresh().await;
    let mut tx = target.db.begin();
    let local = tx
        .insert(
            "counters",
            fields(obj! { "name" => "local", "value" => 9i64 }),
        )
        .await
        .unwrap();
    target.db.commit(tx).await.unwrap();
    let count = async |db: &Database| db.begin().query("counters").collect().await.unwrap().len();

    let err = target
        .db
        .import_snapshot(zip.clone(), ImportOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ImportTargetNotEmpty", "{err}");
    assert!(err.to_string().contains("\"counters\""), "{err}");
    assert_eq!(
        count(&target.db).await,
        1,
        "a refused import changes nothing"
    );

    let append = ImportOptions {
        mode: ImportMode::Append,
        ..ImportOptions::default()
    };
    target
        .db
        .import_snapshot(zip.clone(), append.clone())
        .await
        .unwrap();
    assert_eq!(count(&target.db).await, 4);
    let err = target
        .db
        .import_snapshot(zip.clone(), append)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        "ImportTargetNotEmpty",
        "the same ids twice: {err}"
    );
    assert_eq!(count(&target.db).await, 4);

    let replace = ImportOptions {
        mode: ImportMode::Replace,
        ..ImportOptions::default()
    };
    let summary = target.db.import_snapshot(zip, replace).await.unwrap();
    assert_eq!(
        summary.deleted, 1,
        "the local document; the imported ones are replaced"
    );
    assert_eq!(count(&target.db).await, 3);
    assert!(target.db.begin().get(local).await.unwrap().is_none());
    assert!(same(&dump(&source.db).await, &dump(&target.db).await));
}

#[tokio::test]
async fn a_subscriber_sees_the_import_at_once() {
    let source = fresh().await;
    let mut tx = source.db.begin();
    for i in 0..20_000i64 {
        tx.insert("accounts", fields(obj! { "n" => i }))
            .await
            .unwrap();
        if i % 10_000 == 9_999 {
            source.db.commit(tx).await.unwrap();
            tx = source.db.begin();
        }
    }
    let zip = export(&source.db, None).await;

    let target = fresh().await;
    let mut tx = target.db.begin();
    assert!(tx.query("accounts").collect().await.unwrap().is_empty());
    let subscription = target.db.subscribe(tx.read_set().clone(), tx.snapshot_ts());
    let mut commits = target.db.watch_commits();
    let before = *commits.borrow_and_update();

    // More documents than one transaction may write: still one commit.
    target
        .db
        .import_snapshot(zip, ImportOptions::default())
        .await
        .unwrap();
    let at = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        subscription.invalidated(),
    )
    .await
    .expect("the subscriber is told");
    assert!(at > before);
    assert_eq!(target.db.latest_ts(), at, "one commit");
    let mut tx = target.db.begin();
    let page = tx.query("accounts").take(100).await.unwrap();
    assert_eq!(page.len(), 100);
    assert_eq!(dump(&target.db).await["accounts"].len(), 20_000);
}

/// A database's whole visible state, to show a refused import changed nothing.
async fn state(db: &Database) -> (keel_db::Timestamp, BTreeMap<String, Vec<Document>>) {
    (db.latest_ts(), dump(db).await)
}

#[tokio::test]
async fn malformed_snapshots_are_refused_and_change_nothing() {
    let t = fresh().await;
    let blobs: Arc<dyn BlobStore> = Arc::new(LocalBlobStore::new(t.dir.path().join("blobs")));
    let mut tx = t.db.begin();
    tx.insert(
        "counters",
        fields(obj! { "name" => "kept", "value" => 1i64 }),
    )
    .await
    .unwrap();
    t.db.commit(tx).await.unwrap();
    let before = state(&t.db).await;
    let tables = br#"{"name":"posts","id":10003}
{"name":"users","id":10004}
"#;
    let good_post = br#"{"_id":"ID","_creationTime":1.0,"title":"t"}"#;
    let id = keel_values::DocumentId::new(keel_values::TableNumber(10003), [3; 16]).to_string();
    let post = String::from_utf8_lossy(good_post).replace("ID", &id);
    let other_table_id =
        keel_values::DocumentId::new(keel_values::TableNumber(10004), [3; 16]).to_string();
    let bomb = vec![b' '; 64 * 1024];

    let cases: Vec<(&str, Bytes, ImportLimits, &str, &[&str])> = vec![
        (
            "not a zip",
            Bytes::from_static(b"PK\x03\x04 nope"),
            ImportLimits::default(),
            "InvalidZip",
            &["not a readable ZIP"],
        ),
        (
            "bad JSON line",
            zip_of(&[
                ("_tables/documents.jsonl", tables),
                (
                    "posts/documents.jsonl",
                    format!("{post}\n{{\"title\": \n").as_bytes(),
                ),
            ]),
            ImportLimits::default(),
            "InvalidSnapshot",
            &["posts/documents.jsonl line 2", "not JSON"],
        ),
        (
            "unknown value encoding",
            zip_of(&[("posts/documents.jsonl", br#"{"title":{"$set":[]}}"#)]),
            ImportLimits::default(),
            "InvalidSnapshot",
            &["posts/documents.jsonl line 1", "$set"],
        ),
        (
            "the schema refuses a user",
            zip_of(&[
                ("_tables/documents.jsonl", tables),
                (
                    "users/documents.jsonl",
                    b"{\"name\":\"ok\"}\n{\"name\": 5}\n",
                ),
            ]),
            ImportLimits::default(),
            "InvalidSnapshot",
            &["users/documents.jsonl line 2", "SchemaValidationFailed"],
        ),
        (
            "a bad _id",
            zip_of(&[("posts/documents.jsonl", br#"{"_id":"abc","title":"t"}"#)]),
            ImportLimits::default(),
            "InvalidSnapshot",
            &["posts/documents.jsonl line 1", "bad _id"],
        ),
        (
            "an _id of another table",
            zip_of(&[
                ("_tables/documents.jsonl", tables),
                (
                    "posts/documents.jsonl",
                    format!("{post}\n{{\"_id\":\"{other_table_id}\"}}\n").as_bytes(),
                ),
            ]),
            ImportLimits::default(),
            "InvalidSnapshot",
            &["posts/documents.jsonl line 2", "table number 10004"],
        ),
        (
            "a system field",
            zip_of(&[("posts/documents.jsonl", br#"{"_secret":1}"#)]),
            ImportLimits::default(),
            "InvalidSnapshot",
            &["posts/documents.jsonl line 1", "_secret"],
        ),
        (
            "a zip bomb",
            zip_of(&[("posts/documents.jsonl", &bomb)]),
            ImportLimits {
                max_entry_bytes: 16 * 1024,
                ..ImportLimits::default()
            },
            "SnapshotTooLarge",
            &["posts/documents.jsonl", "unpacks to more than"],
        ),
        (
            "too many bytes in all",
            zip_of(&[
                ("posts/documents.jsonl", &bomb[..1000]),
                ("users/documents.jsonl", &bomb[..1000]),
            ]),
            ImportLimits {
                max_total_bytes: 1500,
                ..ImportLimits::default()
            },
            "SnapshotTooLarge",
            &["users/documents.jsonl"],
        ),
        (
            "a component",
            zip_of(&[("_components/x/posts/documents.jsonl", b"{}")]),
            ImportLimits::default(),
            "InvalidSnapshot",
            &["_components/x", "components"],
        ),
        (
            "a table number taken",
            zip_of(&[("_tables/documents.jsonl", br#"{"name":"posts","id":10001}"#)]),
            ImportLimits::default(),
            "TableNumberConflict",
            &["\"posts\"", "10001"],
        ),
        (
            "a new table on a taken number",
            zip_of(&[("_tables/documents.jsonl", br#"{"name":"fresh","id":10003}"#)]),
            ImportLimits::default(),
            "TableNumberConflict",
            &["\"fresh\"", "\"posts\""],
        ),
        (
            "a file with the wrong hash",
            zip_of(&[
                (
                    "_storage/documents.jsonl",
                    format!("{{\"_id\":\"{id}\",\"sha256\":\"AAAA\",\"size\":2}}").as_bytes(),
                ),
                (&format!("_storage/{id}.txt"), b"hi"),
            ]),
            ImportLimits::default(),
            "InvalidSnapshot",
            &["_storage/", "SHA-256"],
        ),
        (
            "a document that is not an object",
            zip_of(&[("posts/documents.jsonl", b"[1]")]),
            ImportLimits::default(),
            "InvalidSnapshot",
            &["posts/documents.jsonl line 1", "object"],
        ),
    ];
    for (what, zip, limits, code, needles) in cases {
        let options = ImportOptions {
            mode: ImportMode::Replace,
            file_storage: Some(blobs.clone()),
            limits,
        };
        let err: SnapshotError = t.db.import_snapshot(zip, options).await.unwrap_err();
        assert_eq!(err.code(), code, "{what}: {err}");
        assert!(err.is_bad_request(), "{what}");
        for needle in needles {
            assert!(
                err.to_string().contains(needle),
                "{what}: {err} lacks {needle}"
            );
        }
        let after = state(&t.db).await;
        assert_eq!(after.0, before.0, "{what}: no commit");
        assert!(same(&after.1, &before.1), "{what}: nothing changed");
    }
    let stored = blobs
        .written_before(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        stored.is_empty(),
        "no file of a refused import is kept: {stored:?}"
    );
}

#[tokio::test]
async fn documents_without_ids_get_new_ones() {
    let t = fresh().await;
    let zip = zip_of(&[(
        "counters/documents.jsonl",
        b"{\"name\":\"a\",\"value\":1}\n{\"name\":\"b\",\"value\":2.5}\n",
    )]);
    t.db.import_snapshot(zip, ImportOptions::default())
        .await
        .unwrap();
    let docs = t.db.begin().query("counters").collect().await.unwrap();
    let values: Vec<&Value> = docs.iter().map(|d| &d.fields["value"]).collect();
    assert_eq!(values, [&Value::Int64(1), &Value::Float64(2.5)]);
    let _: Object = docs[0].fields.clone();
}
