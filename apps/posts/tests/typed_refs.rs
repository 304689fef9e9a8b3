//! The app's typed function references ([`keel_posts::api`]) through every caller, against the
//! `keel` binary (idp + backend + web in one process on 127.0.0.1:0): the registry (the app
//! registers each function under its reference), the web tier's loaders and server functions
//! (the posts pages and forms call the backend by reference), [`HttpClient`], [`LiveClient`]
//! and [`QueryClient`] — and the scheduler (`posts:publishLater` schedules `posts:publish` by
//! its internal reference). What does not compile (a wrong argument type, a query called as a
//! mutation, an internal reference from a client) is in `crates/protocol/tests/compile_fail`.

mod support;

use std::time::Duration;

use keel_client::{ClientError, HttpClient, LiveClient, QueryClient};
use keel_posts::api;
use keel_posts::functions::posts::{
    CreateArgs, IdArgs, ImportArgs, ListArgs, PageArgs, PublishLaterArgs,
};
use keel_posts::functions::users::NoArgs;
use keel_values::PaginationOptions;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use support::{Deployment, Mode, post_id, rand_suffix};

/// How long a scheduled post may take to appear.
const SCHEDULED_WAIT: Duration = Duration::from_secs(20);

fn new_post(title: &str) -> CreateArgs {
    CreateArgs {
        title: title.to_owned(),
        body: "typed".to_owned(),
        image_id: None,
    }
}

#[tokio::test]
async fn the_web_tier_calls_the_backend_by_reference() {
    let deployment = Deployment::start(Mode::OneProcess);
    let email = format!("refs-web-{}@example.com", rand_suffix());
    let visitor = deployment.signed_up(&email).await;

    // Server function → `api::posts::CREATE`; loaders → `api::posts::PAGE`, `api::users::ME`.
    let title = format!("Typed {}", rand_suffix());
    let response = visitor.create_post(&title).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/posts");
    let (status, html) = visitor.page("/posts").await;
    assert_eq!(status, StatusCode::OK);
    let id = post_id(&html, &title).unwrap_or_else(|| panic!("{title} not listed: {html}"));
    // Only the author gets a delete button: `users:me`'s typed `Me` matched the post's author.
    assert!(
        html.contains(&format!("name=\"id\" value=\"{id}\"")),
        "{html}"
    );

    // Loader → `api::posts::GET`.
    let (status, html) = visitor.page(&format!("/posts/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("<h4>{title}</h4>")), "{html}");
    // A typed `None` from `posts:get` is the route's not-found.
    let (status, _) = visitor.page("/posts/not-a-post-id").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Server function → `api::posts::REMOVE` (its `()` result).
    let response = visitor
        .client
        .post(visitor.url("/_keel/fn/posts/remove"))
        .form(&[("id", id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/posts");
    let (_, html) = visitor.page("/posts").await;
    assert!(post_id(&html, &title).is_none(), "{title} still listed");

    // Server function → `api::posts::IMPORT_SAMPLE` (an action).
    let response = visitor
        .client
        .post(visitor.url("/_keel/fn/posts/importSample"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/posts");
    let (_, html) = visitor.page("/posts").await;
    assert!(html.contains(">Sample post 5</a>"), "{html}");
}

#[tokio::test]
async fn the_http_client_and_query_client_take_references() {
    let deployment = Deployment::start(Mode::OneProcess);
    let email = format!("refs-http-{}@example.com", rand_suffix());
    let token = deployment.backend_token(&email).await;
    let shared = HttpClient::new(&deployment.backend).unwrap();
    let client = shared.with_auth(token.clone());

    let me = client
        .query(api::users::ME, NoArgs {})
        .await
        .unwrap()
        .expect("signed in");
    assert_eq!(me.email.as_deref(), Some(email.as_str()));

    let title = format!("Http {}", rand_suffix());
    let id: String = client
        .mutation(api::posts::CREATE, new_post(&title))
        .await
        .unwrap();
    let post = client
        .query(api::posts::GET, IdArgs { id: id.clone() })
        .await
        .unwrap()
        .expect("the new post");
    assert_eq!(
        (post.id.as_str(), post.title.as_str()),
        (id.as_str(), title.as_str())
    );
    assert_eq!(post.author_id, me.token_identifier);
    assert!(post.image_url.is_none());

    let listed = client
        .consistent_query(api::posts::LIST, ListArgs { limit: Some(1) })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);

    let imported = client
        .action(api::posts::IMPORT_SAMPLE, ImportArgs { count: 2 })
        .await
        .unwrap();
    assert_eq!(imported, 2);

    // The query client (what loaders read through), with the same references.
    // (`with_auth` starts a new snapshot: this one sees the posts imported since.)
    let cache = QueryClient::with_http(shared.with_auth(token));
    let page = cache
        .query(
            api::posts::PAGE,
            PageArgs {
                pagination_opts: PaginationOptions::first(10),
            },
        )
        .await
        .unwrap();
    assert_eq!(page.page.len(), 3, "{page:?}");
    assert_eq!(page.page[2].id, id);

    // The app's refusals arrive as typed errors, as with paths.
    let refused = client
        .mutation(api::posts::CREATE, new_post(" "))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, ClientError::Application { message, .. } if message.contains("title")),
        "{refused:?}"
    );
    // Arguments a reference's type cannot express still get the server's check: a path string
    // with the wrong shape is refused with Convex's validation error.
    let wrong = client
        .mutation::<String, _>("posts:create", serde_json::json!({ "title": 5 }))
        .await
        .unwrap_err();
    assert!(
        wrong.to_string().contains("ArgumentValidationError"),
        "{wrong}"
    );

    // The scheduler runs `posts:publish` by its internal reference.
    let later = format!("Later {}", rand_suffix());
    client
        .mutation(
            api::posts::PUBLISH_LATER,
            PublishLaterArgs {
                title: later.clone(),
                body: "scheduled".to_owned(),
                delay_ms: 0.0,
            },
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + SCHEDULED_WAIT;
    let live = LiveClient::new(&deployment.backend).unwrap();
    live.set_auth(client.auth().unwrap()).unwrap();
    let mut posts = live
        .subscribe("posts:list", serde_json::json!({ "limit": 10 }))
        .unwrap();
    loop {
        let update = tokio::time::timeout_at(deadline, posts.next_update())
            .await
            .expect("the scheduled post in time")
            .expect("an update");
        let listed: Vec<keel_posts::functions::PostView> =
            keel_values::from_value(&update.result.unwrap()).unwrap();
        if listed.iter().any(|p| p.title == later) {
            break;
        }
    }
    live.close();
}

#[tokio::test]
async fn the_live_client_takes_references() {
    let deployment = Deployment::start(Mode::OneProcess);
    let email = format!("refs-live-{}@example.com", rand_suffix());
    let token = deployment.backend_token(&email).await;
    let live = LiveClient::new(&deployment.backend).unwrap();
    live.set_auth(token).unwrap();

    let title = format!("Live {}", rand_suffix());
    let id = live
        .mutation(api::posts::CREATE, new_post(&title))
        .await
        .unwrap();
    let post = live
        .query(api::posts::GET, IdArgs { id: id.clone() })
        .await
        .unwrap()
        .expect("the new post");
    assert_eq!(post.title, title);
    let me = live.query(api::users::ME, NoArgs {}).await.unwrap();
    assert_eq!(me.map(|me| me.token_identifier), Some(post.author_id));
    let imported = live
        .action(api::posts::IMPORT_SAMPLE, ImportArgs { count: 1 })
        .await
        .unwrap();
    assert_eq!(imported, 1);
    live.mutation(api::posts::REMOVE, IdArgs { id: id.clone() })
        .await
        .unwrap();
    let gone = live.query(api::posts::GET, IdArgs { id }).await.unwrap();
    assert!(gone.is_none(), "{gone:?}");
    live.close();
}
