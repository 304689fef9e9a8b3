//! Attacks on file storage (`/api/storage/…` on the backend) and on the HTTP actions of the
//! site (`POST /posts`).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::Deployment;

/// Runs mutation `path` with `args` as the bearer of `token`; the HTTP API's JSON answer.
async fn mutation(keel: &Deployment, token: &str, path: &str, args: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{}/api/mutation", keel.backend))
        .bearer_auth(token)
        .json(&json!({ "path": path, "args": args, "format": "json" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A fresh upload URL for the bearer of `token`.
async fn upload_url(keel: &Deployment, token: &str) -> String {
    let answer = mutation(keel, token, "files:generateUploadUrl", json!({})).await;
    answer["value"].as_str().expect("an upload URL").to_owned()
}

/// POSTs `body` as `content_type` to `url`; the status and the JSON answer.
async fn upload(url: &str, content_type: &str, body: &'static str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

attack!(
    /// An upload URL stores one file: used again, with a forged secret or without a token it
    /// is refused with 401 `InvalidUploadToken`; an anonymous caller gets no URL at all.
    upload_urls_are_single_use_and_unforgeable,
    |keel| {
        let token = keel.backend_token("uploader@example.com").await;
        let url = upload_url(keel, &token).await;
        let (status, _) = upload(&url, "image/png", "bytes").await;
        assert_eq!(status, StatusCode::OK);
        let (base, query) = url.split_once("token=").unwrap();
        let (id, _) = query.split_once('.').unwrap();
        for refused in [
            url.clone(),
            format!("{base}token={id}.{}", "f".repeat(32)),
            format!("{base}token=%00%2e%2e"),
            format!("{}/api/storage/upload", keel.backend),
        ] {
            let (status, body) = upload(&refused, "image/png", "more bytes").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}: {body}");
            assert_eq!(body["code"], "InvalidUploadToken");
        }
        let anonymous: Value = reqwest::Client::new()
            .post(format!("{}/api/mutation", keel.backend))
            .json(&json!({ "path": "files:generateUploadUrl", "args": {}, "format": "json" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(anonymous["status"], "error");
        assert_eq!(anonymous["errorData"]["code"], "UNAUTHENTICATED");
    }
);

attack!(
    /// Hostile storage ids and traversal paths reach no file (404), and never the data
    /// directory's files.
    storage_paths_reach_no_other_file,
    |keel| {
        let client = reqwest::Client::new();
        for path in [
            "/api/storage/..%2Fkeel.sqlite3",
            "/api/storage/..%2F..%2Fidp%2Fsecret_key",
            "/api/storage/%2e%2e",
            "/api/storage/storage",
            "/api/storage/0123456789abcdef0123456789abcdef",
        ] {
            let response = client
                .get(format!("{}{path}", keel.backend))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        }
        let dotted = client
            .get(format!("{}/api/storage/../../keel.sqlite3", keel.backend))
            .send()
            .await
            .unwrap();
        assert_ne!(dotted.status(), StatusCode::OK);
    }
);

attack!(
    /// A file uploaded as HTML is served sandboxed and unsniffed: it cannot run script with
    /// the backend's origin.
    uploaded_html_cannot_run_script,
    |keel| {
        let token = keel.backend_token("html@example.com").await;
        let url = upload_url(keel, &token).await;
        let (status, body) = upload(&url, "text/html", "<script>alert(1)</script>").await;
        assert_eq!(status, StatusCode::OK);
        let id = body["storageId"].as_str().unwrap();
        let served = reqwest::get(format!("{}/api/storage/{id}", keel.backend))
            .await
            .unwrap();
        assert_eq!(served.headers()["content-security-policy"], "sandbox");
        assert_eq!(served.headers()["x-content-type-options"], "nosniff");
        // Not an image: posts:create refuses it as a post's image, as it does ids of other
        // tables and strings that are no ids.
        let post = mutation(keel, &token, "posts:create", json!({ "title": "t", "body": "" })).await;
        let post_id = post["value"].as_str().unwrap().to_owned();
        for image_id in [id, post_id.as_str(), "../../etc/passwd", ""] {
            let answer = mutation(
                keel,
                &token,
                "posts:create",
                json!({ "title": "t", "body": "", "imageId": image_id }),
            )
            .await;
            assert_eq!(answer["errorData"]["field"], "imageId", "{image_id}: {answer}");
        }
    }
);

attack!(
    /// `POST /posts` on the site: no token or a bad one 401, a body that is not the JSON it
    /// takes 400, one over 20 MiB 413, other routes 404; nothing is created.
    http_action_refuses_bad_calls,
    |keel| {
        let client = reqwest::Client::new();
        let site = format!("{}/posts", keel.site);
        let token = keel.backend_token("site@example.com").await;
        let cases: Vec<(Option<&str>, Vec<u8>, StatusCode)> = vec![
            (None, br#"{"title":"t","body":"b"}"#.to_vec(), StatusCode::UNAUTHORIZED),
            (Some("forged"), br#"{"title":"t","body":"b"}"#.to_vec(), StatusCode::UNAUTHORIZED),
            (Some(&token), b"{".to_vec(), StatusCode::BAD_REQUEST),
            (Some(&token), br#"{"title":"t","body":"b","admin":true}"#.to_vec(), StatusCode::BAD_REQUEST),
            (Some(&token), br#"{"title":"","body":"b"}"#.to_vec(), StatusCode::BAD_REQUEST),
            (Some(&token), vec![b' '; 20 * 1024 * 1024 + 1], StatusCode::PAYLOAD_TOO_LARGE),
        ];
        for (bearer, body, expected) in cases {
            let mut request = client.post(&site).body(body);
            if let Some(bearer) = bearer {
                request = request.bearer_auth(bearer);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), expected, "{bearer:?}");
        }
        for path in ["/posts/", "/Posts", "/api/mutation", "/../posts"] {
            let response = client
                .post(format!("{}{path}", keel.site))
                .bearer_auth(&token)
                .body("{}")
                .send()
                .await
                .unwrap();
            assert_ne!(response.status(), StatusCode::CREATED, "{path}");
        }
        let listed: Value = client
            .post(format!("{}/api/query", keel.backend))
            .bearer_auth(&token)
            .json(&json!({ "path": "posts:list", "args": {}, "format": "json" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed["value"], json!([]), "nothing was created");
    }
);

attack!(
    /// Hostile `multipart/form-data` bodies for the new-post form: malformed, with too many
    /// parts, or over 10 MiB are refused (400, 400, 413) and create nothing; a file that is not
    /// an image is refused on the form.
    hostile_multipart_forms_are_refused,
    |keel| {
        let visitor = keel.signed_up("forms@example.com").await;
        let boundary = "b0undary";
        let post = async |body: Vec<u8>| {
            visitor
                .client
                .post(visitor.url("/_keel/fn/posts/create"))
                .header("content-type", format!("multipart/form-data; boundary={boundary}"))
                .body(body)
                .send()
                .await
                .unwrap()
        };
        let part = |name: &str, value: &str| {
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
        };
        let many: String = (0..200).map(|n| part(&format!("f{n}"), "v")).collect::<String>()
            + &format!("--{boundary}--");
        let huge = part("title", "big") + &part("body", &"x".repeat(10 * 1024 * 1024 + 1));
        let cases: Vec<(Vec<u8>, StatusCode)> = vec![
            (b"--b0undary\r\nno headers".to_vec(), StatusCode::BAD_REQUEST),
            (many.into_bytes(), StatusCode::BAD_REQUEST),
            (huge.into_bytes(), StatusCode::PAYLOAD_TOO_LARGE),
        ];
        for (body, expected) in cases {
            assert_eq!(post(body).await.status(), expected);
        }
        let html_file = part("title", "Sneaky")
            + &format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.svg\"\r\nContent-Type: text/html\r\n\r\n<script>alert(1)</script>\r\n--{boundary}--\r\n"
            );
        let response = post(html_file.into_bytes()).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with("/posts?error="), "{location}");
        let (_, html) = visitor.page("/posts").await;
        assert!(!html.contains("Sneaky"), "nothing was created");
    }
);
