//! The operators' routes (`/api/admin/…`) on a real backend over real sockets: 401
//! without the admin key on every route, a snapshot exported from a SQLite backend and imported
//! into a PostgreSQL one answering the same queries, a subscriber seeing an import, malformed
//! uploads refused with nothing changed, the data listing, and running a function as a user.

mod common;

use common::{TestBackend, WAIT};
use keel_backend::{AdminKey, BackendConfig};
use keel_db::persistence::PostgresTestSchema;
use keel_testing::sync::{SyncClient, updated_value};
use serde_json::{Value as Json, json};

const KEY: &str = "an-admin-key-for-the-tests-0123456789";

fn with_key() -> BackendConfig {
    BackendConfig {
        admin_key: Some(KEY.parse::<AdminKey>().unwrap()),
        ..BackendConfig::default()
    }
}

fn admin(b: &TestBackend, route: &str) -> String {
    format!("{}/api/admin/{route}", b.url())
}

async fn query(b: &TestBackend, path: &str) -> Json {
    let response: Json = reqwest::Client::new()
        .post(format!("{}/api/query", b.url()))
        .json(&json!({ "path": path, "args": {}, "format": "json" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["status"], "success", "{response}");
    response["value"].clone()
}

async fn export(b: &TestBackend) -> bytes::Bytes {
    let response = reqwest::Client::new()
        .get(admin(b, "export"))
        .header("Authorization", format!("Convex {KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    response.bytes().await.unwrap()
}

async fn import(b: &TestBackend, zip: bytes::Bytes, mode: &str) -> (u16, Json) {
    let response = reqwest::Client::new()
        .post(admin(b, &format!("import?mode={mode}")))
        .header("Authorization", format!("Convex {KEY}"))
        .body(zip)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Json::Null),
    )
}

#[tokio::test]
async fn every_admin_route_answers_401_without_the_admin_key() {
    let keyed = TestBackend::start_with(with_key()).await;
    let keyless = TestBackend::start().await;
    let client = reqwest::Client::new();
    let routes = [
        (reqwest::Method::GET, "export"),
        (reqwest::Method::POST, "import"),
        (reqwest::Method::GET, "tables"),
        (reqwest::Method::GET, "tables/messages"),
        (reqwest::Method::POST, "run"),
    ];
    for (method, route) in routes {
        for (backend, header, code) in [
            (&keyed, None, "MissingAdminKey"),
            (&keyed, Some(format!("Convex {KEY}x")), "BadAdminKey"),
            // HTTP trims the value to `Convex`: not the scheme.
            (&keyed, Some("Convex ".to_owned()), "BadAdminKey"),
            (&keyed, Some("Convex  x".to_owned()), "BadAdminKey"),
            (&keyed, Some(format!("Bearer {KEY}")), "BadAdminKey"),
            (&keyless, Some(format!("Convex {KEY}")), "BadAdminKey"),
        ] {
            let mut request = client
                .request(method.clone(), admin(backend, route))
                .body(r#"{"path":"counter:increment"}"#);
            if let Some(header) = &header {
                request = request.header("Authorization", header);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {route} with {header:?}");
            let body: Json = response.json().await.unwrap();
            assert_eq!(body["code"], code, "{method} {route} with {header:?}");
        }
    }
    assert_eq!(
        query(&keyed, "counter:get").await["n"],
        0.0,
        "no refused run ran anything"
    );
}

#[tokio::test]
async fn a_sqlite_export_imports_into_postgres_and_answers_the_same() {
    let source = TestBackend::start_with(with_key()).await;
    for body in ["first", "second", "third"] {
        source
            .backend
            .run_mutation(
                &keel_protocol::normalize_udf_path("messages:send").unwrap(),
                keel_values::obj! { "body" => body }
                    .as_object()
                    .unwrap()
                    .clone(),
                &keel_backend::Identity::Anonymous,
            )
            .await
            .unwrap();
    }
    source.increment().await;
    source.increment().await;
    let zip = export(&source).await;

    let pg = PostgresTestSchema::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let target = TestBackend::start_node(&pg, with_key()).await;
    let (status, summary) = import(&target, zip.clone(), "requireEmpty").await;
    assert_eq!(status, 200, "{summary}");
    for path in ["messages:list", "counter:get"] {
        assert_eq!(
            query(&source, path).await,
            query(&target, path).await,
            "{path}"
        );
    }
    assert_eq!(
        query(&target, "messages:list").await,
        json!(["first", "second", "third"])
    );

    // Again, into tables that now hold documents: refused unless replaced.
    let (status, body) = import(&target, zip.clone(), "requireEmpty").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("ImportTargetNotEmpty")),
        "{body}"
    );
    let (status, body) = import(&target, zip, "replace").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted"], 0, "the same documents replaced: {body}");
    assert_eq!(
        query(&target, "messages:list").await,
        json!(["first", "second", "third"])
    );
}

#[tokio::test]
async fn a_subscriber_sees_an_import_into_a_running_deployment() {
    let source = TestBackend::start_with(with_key()).await;
    for _ in 0..3 {
        source.increment().await;
    }
    let zip = export(&source).await;

    let target = TestBackend::start_with(with_key()).await;
    let mut client = SyncClient::connect(&target.ws_url("/api/sync")).await;
    client.add_query(0, 1, "counter:get", json!({})).await;
    let first = client
        .transition_until(|t| updated_value(t, 1).is_some())
        .await;
    assert_eq!(updated_value(&first, 1).unwrap()["n"], 0.0);

    let (status, body) = import(&target, zip, "requireEmpty").await;
    assert_eq!(status, 200, "{body}");
    let next = tokio::time::timeout(
        WAIT,
        client.transition_until(|t| updated_value(t, 1).is_some()),
    )
    .await
    .expect("the subscriber is told within the deadline");
    assert_eq!(updated_value(&next, 1).unwrap()["n"], 3.0);
}

#[tokio::test]
async fn malformed_uploads_are_refused_and_change_nothing() {
    let target = TestBackend::start_with(BackendConfig {
        max_import_bytes: 64 * 1024,
        ..with_key()
    })
    .await;
    target.increment().await;
    let before = query(&target, "counter:get").await;
    let ts = target.backend.latest_ts();

    let (status, body) = import(&target, bytes::Bytes::from_static(b"not a zip"), "replace").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("InvalidZip")),
        "{body}"
    );
    let (status, body) = import(&target, bytes::Bytes::from(vec![0u8; 65 * 1024]), "replace").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("RequestTooLarge")),
        "{body}"
    );
    let response = reqwest::Client::new()
        .get(admin(&target, "export?includeStorage=maybe"))
        .header("Authorization", format!("Convex {KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "a hostile export parameter");
    let (status, body) = import(&target, bytes::Bytes::new(), "sideways").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("BadAdminRequest")),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains("sideways"));

    // A ZIP whose second line is broken: the error names the entry and the line.
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer
        .start_file(
            "messages/documents.jsonl",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
    std::io::Write::write_all(&mut writer, b"{\"body\":\"ok\"}\n{\"body\":\n").unwrap();
    let zip = bytes::Bytes::from(writer.finish().unwrap().into_inner());
    let (status, body) = import(&target, zip, "replace").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("InvalidSnapshot")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("messages/documents.jsonl line 2"),
        "{body}"
    );

    assert_eq!(target.backend.latest_ts(), ts, "no commit");
    assert_eq!(query(&target, "counter:get").await, before);
}

#[tokio::test]
async fn data_lists_tables_and_pages_documents() {
    let b = TestBackend::start_with(with_key()).await;
    let send = keel_protocol::normalize_udf_path("messages:send").unwrap();
    for i in 0..5 {
        b.backend
            .run_mutation(
                &send,
                keel_values::obj! { "body" => format!("m{i}"), }
                    .as_object()
                    .unwrap()
                    .clone(),
                &keel_backend::Identity::Anonymous,
            )
            .await
            .unwrap();
    }
    let client = reqwest::Client::new();
    let get = async |route: &str| -> (u16, Json) {
        let response = client
            .get(admin(&b, route))
            .header("Authorization", format!("Convex {KEY}"))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    };
    let (status, tables) = get("tables").await;
    assert_eq!(status, 200);
    let messages = tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "messages")
        .unwrap();
    assert_eq!(messages["documents"], 5);
    assert!(
        tables
            .as_array()
            .unwrap()
            .iter()
            .all(|t| !t["name"].as_str().unwrap().starts_with('_')),
        "no system tables: {tables}"
    );

    let (_, page) = get("tables/messages?limit=3").await;
    assert_eq!(page["documents"].as_array().unwrap().len(), 3);
    let next = page["next"].as_str().unwrap().to_owned();
    let (_, rest) = get(&format!("tables/messages?limit=3&after={next}")).await;
    assert_eq!(rest["documents"].as_array().unwrap().len(), 2);
    assert!(rest["next"].is_null());
    let first = &page["documents"][0];
    assert!(
        first["_id"].is_string() && first["_creationTime"].is_f64(),
        "{first}"
    );

    let (status, body) = get("tables/_storage").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("TableNotFound")),
        "{body}"
    );
    let (status, body) = get("tables/messages?after=nope").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("BadAdminRequest")),
        "{body}"
    );
}

#[tokio::test]
async fn run_calls_a_function_as_anonymous_or_as_a_user() {
    let b = TestBackend::start_with(with_key()).await;
    let client = reqwest::Client::new();
    let run = async |body: Json| -> (u16, Json) {
        let response = client
            .post(admin(&b, "run"))
            .header("Authorization", format!("Convex {KEY}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    };
    let (status, anonymous) = run(json!({ "path": "auth:whoami" })).await;
    assert_eq!(status, 200);
    assert_eq!(anonymous, json!({ "status": "success", "value": null }));
    let (_, user) = run(json!({
        "path": "auth:whoami",
        "args": {},
        "identity": { "subject": "user_7", "name": "Ann" },
    }))
    .await;
    assert_eq!(user["value"], "user_7");
    let (_, bumped) = run(json!({ "path": "counter:increment", "args": { "by": 2.0 } })).await;
    assert_eq!(bumped["value"], 2.0);

    let (_, missing) = run(json!({ "path": "nope:nothing" })).await;
    assert_eq!(missing["status"], "error", "{missing}");
    let (status, body) =
        run(json!({ "path": "auth:whoami", "identity": { "name": "no subject" } })).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("BadAdminRequest")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("subject"),
        "{body}"
    );
    let (status, body) = run(json!({ "path": "counter:increment", "args": [1] })).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("BadAdminRequest")),
        "{body}"
    );
}
