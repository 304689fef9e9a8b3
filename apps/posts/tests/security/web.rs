//! Attacks on the web tier: forms, server functions, cookies, pages and assets.

use reqwest::StatusCode;

use crate::support::post_id;

attack!(
    /// A form posted from another site (`Origin` of another host) creates nothing.
    cross_origin_form_post_is_refused,
    |keel| {
        let victim = keel.signed_up("victim@example.com").await;
        let response = victim
            .client
            .post(keel.url("/_keel/fn/posts/create"))
            .header("origin", "http://evil.example")
            .form(&[("title", "Forged"), ("body", "")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let response = victim
            .client
            .post(keel.url("/_keel/fn/posts/create"))
            .header("sec-fetch-site", "cross-site")
            .form(&[("title", "Forged too"), ("body", "")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let (_, html) = victim.page("/posts").await;
        assert!(!html.contains("Forged"), "{html}");
    }
);

attack!(
    /// A post whose title and body are markup is shown as text, never run.
    stored_markup_is_escaped,
    |keel| {
        let author = keel.signed_up("author@example.com").await;
        let title = "<script>alert(1)</script><img src=x onerror=alert(2)>";
        let response = author.create_post(title).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let (_, html) = author.page("/posts").await;
        assert!(!html.contains("<script>alert(1)"), "{html}");
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        let id = post_id(&html, "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;")
            .expect("the post is listed");
        let (status, detail) = author.page(&format!("/posts/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!detail.contains("<script>alert(1)"), "{detail}");
    }
);

attack!(
    /// Paths that climb out of the asset directory or into the server's files find nothing.
    path_traversal_finds_nothing,
    |keel| {
        let visitor = keel.visitor();
        for path in [
            "/_keel/../Cargo.toml",
            "/_keel/%2e%2e/%2e%2e/Cargo.toml",
            "/_keel/assets/..%2f..%2fCargo.toml",
            "/_keel/runtime.js/../../../../etc/passwd",
            "/..%2f..%2f..%2fetc%2fpasswd",
        ] {
            let (status, body) = visitor.page(path).await;
            assert_ne!(status, StatusCode::OK, "{path}");
            assert!(!body.contains("[workspace]") && !body.contains("root:x:0:0"), "{path}");
        }
    }
);

attack!(
    /// Garbage in the session cookies renders the page signed out; it does not fail it.
    forged_session_cookies_are_signed_out,
    |keel| {
        let visitor = keel.visitor();
        for cookie in [
            "__session=not-a-jwt",
            "__session=eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
            "__client=forged; __session=x.y.z",
            "__session=%00%01; __client=\"quoted\"",
        ] {
            let response = visitor
                .client
                .get(keel.url("/posts"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{cookie}");
            let html = response.text().await.unwrap();
            assert!(html.contains("Sign in to see the posts"), "{cookie}: {html}");
        }
    }
);
