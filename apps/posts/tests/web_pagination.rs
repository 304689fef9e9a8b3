//! `/posts` one page at a time: "Load more" without JavaScript (a plain link carrying the
//! cursor), the loaded pages kept live by the page's event stream, and posts inserted and
//! deleted meanwhile neither repeated nor skipped. Against the `keel` binary in one process.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use support::{Deployment, Mode, Visitor};
use tokio::time::Instant;

/// Every wait in these tests.
const WAIT: Duration = Duration::from_secs(15);

/// The titles of the posts a `/posts` page lists, in order.
fn titles(html: &str) -> Vec<String> {
    html.split("data-post-id=\"")
        .skip(1)
        .filter_map(|item| {
            let link = item.split("\">").nth(2)?;
            Some(link.split("</a>").next()?.to_owned())
        })
        .collect()
}

/// The "Load more" link of a `/posts` page, if it has one (`&amp;` decoded).
fn load_more(html: &str) -> Option<String> {
    let at = html.find("class=\"load-more\"")?;
    let href = html[at..].split("href=\"").nth(1)?.split('"').next()?;
    Some(href.replace("&amp;", "&"))
}

/// The page's live event stream.
struct Events {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl Events {
    async fn open(visitor: &Visitor, html: &str) -> Events {
        let marker = r#"<meta name="keel-live" content=""#;
        let start = html.find(marker).expect("a live address") + marker.len();
        let url = html[start..]
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&");
        let response = visitor.client.get(visitor.url(&url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut events = Events {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
        };
        assert_eq!(events.next().await, "ready");
        events
    }

    /// The next named event (pings are skipped).
    async fn next(&mut self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(name) = block.lines().find_map(|l| l.strip_prefix("event: ")) {
                    return name.to_owned();
                }
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Some(Err(_)) | None) => panic!("the stream ended"),
                Err(_) => panic!("no event within {WAIT:?}"),
            }
        }
    }
}

fn numbered(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.rev().map(|n| format!("Post {n}")).collect()
}

#[tokio::test]
async fn load_more_works_without_javascript_and_stays_live_and_whole() {
    let keel = Deployment::start(Mode::OneProcess);
    let ada = keel.signed_up("ada@example.com").await;
    for n in 1..=23 {
        let response = ada.create_post(&format!("Post {n}")).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }

    // The first page: the ten newest, and a plain link for more.
    let (status, html) = ada.page("/posts").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(titles(&html), numbered(14..=23));
    let more = load_more(&html).expect("a Load more link");
    assert!(
        more.starts_with("/posts?until=") && more.ends_with("#more"),
        "{more}"
    );

    // Following it (as a browser without JavaScript does: the fragment stays in the browser)
    // shows the first page and the next, the new page's first post marked for the fragment.
    let second = more.trim_end_matches("#more").to_owned();
    let (status, html) = ada.page(&second).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(titles(&html), numbered(4..=23));
    assert!(html.contains(r#"id="more""#) && html.contains(">Post 13</a>"));
    let at_more = html.find(r#"id="more""#).unwrap();
    assert!(html[at_more..].find(">Post 13</a>") < html[at_more..].find(">Post 12</a>"));
    let third = load_more(&html)
        .expect("more after twenty")
        .trim_end_matches("#more")
        .to_owned();
    let (_, last) = ada.page(&third).await;
    assert_eq!(titles(&last), numbered(1..=23));
    assert_eq!(load_more(&last), None, "no Load more at the end");

    // The two-page view stays live: posts written meanwhile reach it (the stream pushes the
    // page re-rendered from the live cache), and what it shows stays whole — the newest first, every earlier post still
    // there, none twice, the second page still starting where the first ended.
    let mut events = Events::open(&ada, &ada.page(&second).await.1).await;
    let bob = keel.signed_up("bob@example.com").await;
    assert_eq!(
        bob.create_post("Post 24").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(events.next().await, "render");
    let (_, html) = ada.page(&second).await;
    assert_eq!(
        titles(&html),
        numbered(4..=24),
        "the new post on top, nothing pushed out"
    );
    // Ada deletes a post inside the first page and one inside the second.
    for title in ["Post 20", "Post 8"] {
        let id = support::post_id(&html, title).expect("listed");
        let response = ada
            .client
            .post(ada.url("/_keel/fn/posts/remove"))
            .form(&[("id", id.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }
    let deadline = Instant::now() + WAIT;
    let html = loop {
        let (_, html) = ada.page(&second).await;
        if !titles(&html).contains(&"Post 8".to_owned()) {
            break html;
        }
        assert!(Instant::now() < deadline, "the deletions never showed");
        assert_eq!(events.next().await, "render");
    };
    // Every post from the newest down to where the second page ended is still listed, in
    // order, none twice; the second page may have been refilled from below (its end is pinned
    // while its subscription lives, a fresh render reads ten again) — but never past a gap.
    let mut everything = numbered(1..=24);
    everything.retain(|t| t != "Post 20" && t != "Post 8");
    let shown = titles(&html);
    let kept: Vec<String> = everything
        .iter()
        .take_while(|t| *t != "Post 3")
        .cloned()
        .collect();
    assert!(shown.starts_with(&kept), "nothing skipped: {shown:?}");
    assert!(
        everything.starts_with(&shown),
        "nothing twice, nothing out of order: {shown:?}"
    );
    // Loading on from there still reaches every post once.
    let third = load_more(&html)
        .expect("more")
        .trim_end_matches("#more")
        .to_owned();
    let (_, html) = ada.page(&third).await;
    assert_eq!(titles(&html), everything);

    // A cursor that is not one of this list starts it over.
    for bad in [
        "/posts?until=nonsense",
        "/posts?until=",
        "/posts?until=%00%ff",
    ] {
        let response = ada.client.get(ada.url(bad)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT, "{bad}");
        assert_eq!(response.headers()["location"], "/posts", "{bad}");
    }
}
