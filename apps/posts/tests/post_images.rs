//! A post with an image, through the new-post form as a browser without JavaScript sends it
//! (`multipart/form-data`): the web tier stores the file through the backend's upload URL, the
//! post page shows it, and the image URL serves the bytes. An empty file input makes a post
//! without an image; a file that is not an image is refused on the form.

mod support;

use reqwest::StatusCode;
use reqwest::header::LOCATION;
use support::{Deployment, Mode, post_id};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR pretend the rest is here";
const BOUNDARY: &str = "----keelTestBoundary7MA4YWxkTrZu0gW";

/// A multipart body: text fields, then a file field `image` (name, content type, bytes).
fn multipart(fields: &[(&str, &str)], image: (&str, &str, &[u8])) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    let (file_name, content_type, bytes) = image;
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{file_name}\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn submit(visitor: &support::Visitor, body: Vec<u8>) -> reqwest::Response {
    visitor
        .client
        .post(visitor.url("/_keel/fn/posts/create"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn a_post_with_an_image_is_shown_with_it(mode: Mode) {
    let keel = Deployment::start(mode);
    let visitor = keel.signed_up("painter@example.com").await;
    let form = multipart(
        &[("title", "Sunset"), ("body", "orange")],
        ("sunset.png", "image/png", PNG),
    );
    let response = submit(&visitor, form).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/posts");
    let (_, list) = visitor.page("/posts").await;
    let id = post_id(&list, "Sunset").expect("the post is listed");
    let (status, html) = visitor.page(&format!("/posts/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let src_at = html
        .find("class=\"post-image\" src=\"")
        .expect("the image is shown")
        + "class=\"post-image\" src=\"".len();
    let src = html[src_at..].split('"').next().unwrap().to_owned();
    assert!(
        src.starts_with(&format!("{}/api/storage/", keel.backend)),
        "{src}"
    );
    let image = reqwest::get(&src).await.unwrap();
    assert_eq!(image.headers()["content-type"], "image/png");
    assert_eq!(&image.bytes().await.unwrap()[..], PNG);

    // No file chosen: the browser sends an empty part; the post has no image.
    let form = multipart(
        &[("title", "Plain"), ("body", "words")],
        ("", "application/octet-stream", b""),
    );
    assert_eq!(submit(&visitor, form).await.status(), StatusCode::SEE_OTHER);
    let (_, list) = visitor.page("/posts").await;
    let plain = post_id(&list, "Plain").expect("the plain post is listed");
    let (_, html) = visitor.page(&format!("/posts/{plain}")).await;
    assert!(!html.contains("post-image"));

    // Not an image: refused on the form, no post.
    let form = multipart(
        &[("title", "Script"), ("body", "")],
        ("x.html", "text/html", b"<script>"),
    );
    let response = submit(&visitor, form).await;
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with("/posts?error="), "{location}");
    let (_, list) = visitor.page("/posts").await;
    assert!(post_id(&list, "Script").is_none());
    // A malformed multipart body is a 400, not a post.
    let response = submit(&visitor, b"--nope".to_vec()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn one_process() {
    a_post_with_an_image_is_shown_with_it(Mode::OneProcess).await;
}

#[tokio::test]
async fn separate_processes() {
    a_post_with_an_image_is_shown_with_it(Mode::Separate).await;
}
