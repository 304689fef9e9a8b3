//! Managing users through the Backend API: updating names and passwords, metadata replace and
//! deep merge (persisted across restarts), deleting (sessions end), listing with Clerk's
//! filters, ordering and paging, counting, listing sessions, signing out everywhere, and
//! hostile input answered with Clerk's errors.

mod common;

use common::{assert_clerk_error, start_in};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn session_of(r: &common::Running, uid: &str) -> String {
    let (status, s) = r
        .call("POST", "/v1/sessions", Some(json!({ "user_id": uid })))
        .await;
    assert_eq!(status, StatusCode::OK, "{s}");
    s["id"].as_str().unwrap().to_owned()
}

async fn token_refused(r: &common::Running, sid: &str) {
    let (status, body) = r
        .call("POST", &format!("/v1/sessions/{sid}/tokens"), None)
        .await;
    assert!(
        status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::NOT_FOUND,
        "{status} {body}"
    );
}

#[tokio::test]
async fn patch_updates_names_password_and_metadata_and_they_persist() {
    let dir = tempfile::tempdir().unwrap();
    let uid;
    {
        let r = start_in(dir.path(), |_| {}).await;
        uid = r.create_user("patch@example.com").await;
        let old = session_of(&r, &uid).await;
        let (status, user) = r
            .call(
                "PATCH",
                &format!("/v1/users/{uid}"),
                Some(json!({"first_name": "Ada", "last_name": "", "public_metadata": {"role": "admin"},
                    "private_metadata": {"stripe": "cus_1"}})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{user}");
        assert_eq!(user["first_name"], "Ada");
        assert_eq!(user["last_name"], Value::Null);
        assert_eq!(user["public_metadata"], json!({"role": "admin"}));
        assert_eq!(user["private_metadata"], json!({"stripe": "cus_1"}));
        assert_eq!(user["unsafe_metadata"], json!({}));

        // A new password, signing out of every session.
        let (status, user) = r
            .call(
                "PATCH",
                &format!("/v1/users/{uid}"),
                Some(json!({"password": "another long passphrase", "sign_out_of_other_sessions": true})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{user}");
        assert!(
            r.idp
                .verify_password(&uid, "another long passphrase", None)
                .await
                .unwrap()
        );
        token_refused(&r, &old).await;
        // A weak one is refused with Clerk's code.
        let (status, body) = r
            .call(
                "PATCH",
                &format!("/v1/users/{uid}"),
                Some(json!({"password": "password"})),
            )
            .await;
        assert_clerk_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_password_pwned",
        );
    }
    let r = start_in(dir.path(), |_| {}).await;
    let (_, user) = r.call("GET", &format!("/v1/users/{uid}"), None).await;
    assert_eq!(user["first_name"], "Ada");
    assert_eq!(user["public_metadata"], json!({"role": "admin"}));
    assert!(user["last_sign_in_at"].as_i64().is_some(), "{user}");
}

#[tokio::test]
async fn metadata_deep_merges_and_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let uid = r.create_user("meta@example.com").await;
    let path = format!("/v1/users/{uid}/metadata");
    r.call(
        "PATCH",
        &path,
        Some(
            json!({"public_metadata": {"prefs": {"theme": "dark", "lang": "en"}, "plan": "free"}}),
        ),
    )
    .await;
    let (status, user) = r
        .call(
            "PATCH",
            &path,
            Some(
                json!({"public_metadata": {"prefs": {"lang": null, "tz": "UTC"}, "plan": "pro"},
                "unsafe_metadata": {"onboarded": true}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(
        user["public_metadata"],
        json!({"prefs": {"theme": "dark", "tz": "UTC"}, "plan": "pro"})
    );
    assert_eq!(user["unsafe_metadata"], json!({"onboarded": true}));
    let (_, user) = r
        .call("PUT", &path, Some(json!({"public_metadata": {"only": 1}})))
        .await;
    assert_eq!(user["public_metadata"], json!({"only": 1}));
    assert_eq!(user["unsafe_metadata"], json!({"onboarded": true}));
    // Not an object, or too big: refused, nothing changed.
    let (status, body) = r
        .call("PATCH", &path, Some(json!({"public_metadata": [1, 2]})))
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "form_param_type_invalid",
    );
    let (status, body) = r
        .call(
            "PATCH",
            &path,
            Some(json!({"private_metadata": {"blob": "x".repeat(9000)}})),
        )
        .await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "form_param_exceeds_allowed_size",
    );
    let (_, user) = r.call("GET", &format!("/v1/users/{uid}"), None).await;
    assert_eq!(user["public_metadata"], json!({"only": 1}));
    assert_eq!(user["private_metadata"], json!({}));
}

#[tokio::test]
async fn deleting_a_user_ends_their_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let uid = r.create_user("leaving@example.com").await;
    let sid = session_of(&r, &uid).await;
    let (status, body) = r.call("DELETE", &format!("/v1/users/{uid}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"id": uid, "object": "user", "deleted": true}));
    token_refused(&r, &sid).await;
    let (status, body) = r.call("GET", &format!("/v1/users/{uid}"), None).await;
    assert_clerk_error(status, &body, StatusCode::NOT_FOUND, "resource_not_found");
    let (status, body) = r.call("DELETE", &format!("/v1/users/{uid}"), None).await;
    assert_clerk_error(status, &body, StatusCode::NOT_FOUND, "resource_not_found");
    // The address is free again.
    r.create_user("leaving@example.com").await;
}

#[tokio::test]
async fn users_are_listed_filtered_ordered_paged_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let mut ids = Vec::new();
    for name in ["carol", "alice", "bob", "dave"] {
        let (status, user) = r
            .call(
                "POST",
                "/v1/users",
                Some(json!({"email_address": [format!("{name}@example.com")], "first_name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{user}");
        ids.push(user["id"].as_str().unwrap().to_owned());
    }
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|u| u["first_name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, list) = r.call("GET", "/v1/users", None).await;
    assert_eq!(
        names(&list),
        ["dave", "bob", "alice", "carol"],
        "newest first"
    );
    let (_, list) = r
        .call(
            "GET",
            "/v1/users?order_by=%2Bfirst_name&limit=2&offset=1",
            None,
        )
        .await;
    assert_eq!(names(&list), ["bob", "carol"]);
    let (_, list) = r
        .call("GET", "/v1/users?order_by=email_address", None)
        .await;
    assert_eq!(names(&list), ["alice", "bob", "carol", "dave"]);
    let (_, list) = r
        .call(
            "GET",
            "/v1/users?email_address=ALICE@example.com&email_address=bob@example.com",
            None,
        )
        .await;
    assert_eq!(names(&list).len(), 2);
    let (_, list) = r
        .call("GET", &format!("/v1/users?user_id={}", ids[0]), None)
        .await;
    assert_eq!(names(&list), ["carol"]);
    let (_, list) = r.call("GET", "/v1/users?query=CAROL%40", None).await;
    assert_eq!(names(&list), ["carol"]);
    let (_, list) = r.call("GET", "/v1/users?query=%25", None).await;
    assert_eq!(names(&list).len(), 0, "% is literal");
    let (_, list) = r
        .call("GET", "/v1/users?phone_number=%2B15555550100", None)
        .await;
    assert_eq!(names(&list).len(), 0);
    let (_, count) = r.call("GET", "/v1/users/count", None).await;
    assert_eq!(count, json!({"object": "total_count", "total_count": 4}));
    let (_, count) = r
        .call("GET", "/v1/users/count?query=example.com", None)
        .await;
    assert_eq!(count["total_count"], 4);
    let (_, count) = r
        .call(
            "GET",
            "/v1/users/count?email_address=dave@example.com",
            None,
        )
        .await;
    assert_eq!(count["total_count"], 1);

    for (query, param) in [
        ("order_by=password_hash", "order_by"),
        ("order_by=created_at;DROP TABLE users", "order_by"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
    ] {
        let (status, body) = r.call("GET", &format!("/v1/users?{query}"), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["errors"][0]["meta"]["param_name"], param, "{query}");
    }
    let long_query = format!("/v1/users?query={}", "q".repeat(300));
    let (status, _) = r.call("GET", &long_query, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, count) = r.call("GET", "/v1/users/count", None).await;
    assert_eq!(count["total_count"], 4, "nothing was dropped");
}

#[tokio::test]
async fn sessions_are_listed_by_user_and_status_and_signed_out_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let uid = r.create_user("many@example.com").await;
    let first = session_of(&r, &uid).await;
    let second = session_of(&r, &uid).await;
    r.call("POST", &format!("/v1/sessions/{first}/revoke"), None)
        .await;
    let (_, list) = r
        .call("GET", &format!("/v1/sessions?user_id={uid}"), None)
        .await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.as_str(), first.as_str()]);
    let (_, active) = r
        .call(
            "GET",
            &format!("/v1/sessions?user_id={uid}&status=active"),
            None,
        )
        .await;
    assert_eq!(active.as_array().unwrap().len(), 1);
    let (_, page) = r
        .call(
            "GET",
            &format!("/v1/sessions?user_id={uid}&paginated=true&limit=1"),
            None,
        )
        .await;
    assert_eq!(page["total_count"], 2);
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let third = session_of(&r, &uid).await;
    let (status, body) = r
        .call(
            "POST",
            &format!("/v1/users/{uid}/sign_out_everywhere"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked_session_ids"].as_array().unwrap().len(), 2);
    for sid in [&second, &third] {
        token_refused(&r, sid).await;
    }
    let (_, active) = r
        .call(
            "GET",
            &format!("/v1/sessions?user_id={uid}&status=active"),
            None,
        )
        .await;
    assert_eq!(active, json!([]));
    for (query, code) in [
        ("status=active", "form_param_missing"),
        ("user_id=x&status=bogus", "form_param_value_invalid"),
    ] {
        let (status, body) = r.call("GET", &format!("/v1/sessions?{query}"), None).await;
        assert_clerk_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, code);
    }
}

#[tokio::test]
async fn hostile_user_updates_get_clerk_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_in(dir.path(), |_| {}).await;
    let uid = r.create_user("target@example.com").await;
    let path = format!("/v1/users/{uid}");
    for (body, status, code) in [
        (
            json!({"first_name": "x".repeat(300)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_param_max_length_exceeded",
        ),
        (
            json!({"last_name": "a\u{0}b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_param_format_invalid",
        ),
        (
            json!({"password": "x".repeat(300)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_password_size_in_bytes_exceeded",
        ),
        (
            json!({"first_name": 42}),
            StatusCode::BAD_REQUEST,
            "form_param_format_invalid",
        ),
        (
            json!({"unsafe_metadata": "str"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "form_param_type_invalid",
        ),
    ] {
        let (got, answer) = r.call("PATCH", &path, Some(body.clone())).await;
        assert_clerk_error(got, &answer, status, code);
    }
    for raw in ["{\"first_name\":", "not json", "[]"] {
        let resp = r
            .http
            .patch(format!("{}{path}", r.url))
            .bearer_auth(r.idp.secret_key())
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_clerk_error(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            "form_param_format_invalid",
        );
    }
    for bad in ["user_nope", "%00", "..%2F..%2Fetc"] {
        let (status, body) = r
            .call(
                "PATCH",
                &format!("/v1/users/{bad}"),
                Some(json!({"first_name": "x"})),
            )
            .await;
        assert_clerk_error(status, &body, StatusCode::NOT_FOUND, "resource_not_found");
        let (status, body) = r.call("DELETE", &format!("/v1/users/{bad}"), None).await;
        assert_clerk_error(status, &body, StatusCode::NOT_FOUND, "resource_not_found");
    }
    // Without the secret key nothing is reachable.
    let (status, body) = r.call_as("DELETE", &path, None, None).await;
    assert_clerk_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "authentication_invalid",
    );
    let (_, user) = r.call("GET", &path, None).await;
    assert_eq!(user["first_name"], "Grace", "{user}");
}
