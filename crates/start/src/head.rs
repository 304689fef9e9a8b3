//! [`Head`]: a route's `<title>`, `<meta>` and `<link>` tags, merged across the matched routes
//! like TanStack's `<HeadContent/>`: the deepest title wins, `meta` is de-duplicated by
//! `charset` / `name` / `property` / `http-equiv` (deeper wins), identical links appear once.

use maud::{Markup, html};

/// One `<meta>` tag as attribute pairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    attrs: Vec<(String, String)>,
}

impl Meta {
    /// `<meta name=… content=…>`.
    pub fn name(name: &str, content: &str) -> Meta {
        Meta::attrs([("name", name), ("content", content)])
    }

    /// `<meta property=… content=…>` (Open Graph).
    pub fn property(property: &str, content: &str) -> Meta {
        Meta::attrs([("property", property), ("content", content)])
    }

    /// `<meta charset=…>` (the document shell always writes `utf-8` first).
    pub fn charset(charset: &str) -> Meta {
        Meta::attrs([("charset", charset)])
    }

    /// A `<meta>` with arbitrary attributes.
    pub fn attrs<'a>(attrs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Meta {
        Meta {
            attrs: attrs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// The value of attribute `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// What makes two tags "the same" for de-duplication, if anything.
    fn dedup_key(&self) -> Option<String> {
        ["charset", "name", "property", "http-equiv"]
            .iter()
            .find_map(|attr| match *attr {
                "charset" => self.get("charset").map(|_| "charset".to_owned()),
                _ => self.get(attr).map(|v| format!("{attr}:{v}")),
            })
    }
}

/// One `<link>` tag as attribute pairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    attrs: Vec<(String, String)>,
}

impl Link {
    /// `<link rel=… href=…>`.
    pub fn new(rel: &str, href: &str) -> Link {
        Link {
            attrs: vec![("rel".into(), rel.into()), ("href".into(), href.into())],
        }
    }

    /// Adds an attribute (`type`, `sizes`, `color` …).
    pub fn attr(mut self, name: &str, value: &str) -> Link {
        self.attrs.push((name.into(), value.into()));
        self
    }

    /// The value of attribute `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a route's `head()` returns.
///
/// ```
/// use keel_start::{Head, Meta};
/// let root = Head::new().title("Keel").meta(Meta::name("description", "root"));
/// let leaf = Head::new().title("Posts").meta(Meta::name("description", "posts"));
/// let merged = Head::merge([root, leaf]);
/// assert_eq!(merged.title.as_deref(), Some("Posts"));
/// assert_eq!(merged.meta.len(), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// `<title>`.
    pub title: Option<String>,
    /// `<meta>` tags.
    pub meta: Vec<Meta>,
    /// `<link>` tags.
    pub links: Vec<Link>,
}

impl Head {
    /// An empty head.
    pub fn new() -> Head {
        Head::default()
    }

    /// Sets the title.
    pub fn title(mut self, title: impl Into<String>) -> Head {
        self.title = Some(title.into());
        self
    }

    /// Adds a `<meta>`.
    pub fn meta(mut self, meta: Meta) -> Head {
        self.meta.push(meta);
        self
    }

    /// Adds a `<link>`.
    pub fn link(mut self, link: Link) -> Head {
        self.links.push(link);
        self
    }

    /// The seed root route's head: charset, viewport, the stylesheet, apple-touch-icon,
    /// 32×32 and 16×16 PNG favicons, the web manifest and `favicon.ico` — all served by this
    /// crate (see [`crate::assets`]).
    pub fn document_defaults() -> Head {
        Head::new()
            .meta(Meta::charset("utf-8"))
            .meta(Meta::name(
                "viewport",
                "width=device-width, initial-scale=1",
            ))
            .link(Link::new("stylesheet", crate::assets::STYLESHEET_PATH))
            .link(Link::new("apple-touch-icon", "/apple-touch-icon.png").attr("sizes", "180x180"))
            .link(
                Link::new("icon", "/favicon-32x32.png")
                    .attr("type", "image/png")
                    .attr("sizes", "32x32"),
            )
            .link(
                Link::new("icon", "/favicon-16x16.png")
                    .attr("type", "image/png")
                    .attr("sizes", "16x16"),
            )
            .link(Link::new("manifest", "/site.webmanifest").attr("color", "#ffffff"))
            .link(Link::new("icon", "/favicon.ico"))
    }

    /// Merges heads from the root (first) to the deepest match (last).
    pub fn merge(heads: impl IntoIterator<Item = Head>) -> Head {
        let mut merged = Head::new();
        for head in heads {
            if head.title.is_some() {
                merged.title = head.title;
            }
            for meta in head.meta {
                match meta.dedup_key() {
                    Some(key) => {
                        match merged
                            .meta
                            .iter_mut()
                            .find(|m| m.dedup_key().as_ref() == Some(&key))
                        {
                            Some(existing) => *existing = meta,
                            None => merged.meta.push(meta),
                        }
                    }
                    None => merged.meta.push(meta),
                }
            }
            for link in head.links {
                if !merged.links.contains(&link) {
                    merged.links.push(link);
                }
            }
        }
        merged
    }

    /// The tags, `<meta charset>` first (it must be within the first 1024 bytes).
    pub(crate) fn render(&self) -> Markup {
        let charset = self
            .meta
            .iter()
            .find_map(|m| m.get("charset"))
            .unwrap_or("utf-8");
        html! {
            meta charset=(charset);
            @for meta in self.meta.iter().filter(|m| m.get("charset").is_none()) {
                (attrs_tag("meta", &meta.attrs))
            }
            @if let Some(title) = &self.title { title { (title) } }
            @for link in &self.links {
                (attrs_tag("link", &link.attrs))
            }
        }
    }
}

/// A void element with escaped attributes.
fn attrs_tag(tag: &str, attrs: &[(String, String)]) -> Markup {
    let mut out = format!("<{tag}");
    for (name, value) in attrs {
        if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            out.push_str(&format!(" {name}=\"{}\"", escape_attr(value)));
        }
    }
    out.push('>');
    maud::PreEscaped(out)
}

fn escape_attr(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deepest_title_and_meta_win_links_deduplicated() {
        let root = Head::document_defaults()
            .title("Root")
            .meta(Meta::name("description", "root"))
            .meta(Meta::property("og:title", "Root"));
        let layout = Head::new().link(Link::new("icon", "/favicon.ico"));
        let leaf = Head::new()
            .title("Leaf")
            .meta(Meta::name("description", "leaf"));
        let merged = Head::merge([root, layout, leaf]);
        assert_eq!(merged.title.as_deref(), Some("Leaf"));
        let descriptions: Vec<_> = merged
            .meta
            .iter()
            .filter(|m| m.get("name") == Some("description"))
            .collect();
        assert_eq!(descriptions.len(), 1);
        assert_eq!(descriptions[0].get("content"), Some("leaf"));
        assert!(
            merged
                .meta
                .iter()
                .any(|m| m.get("property") == Some("og:title"))
        );
        let icons = merged
            .links
            .iter()
            .filter(|l| l.get("href") == Some("/favicon.ico"))
            .count();
        assert_eq!(icons, 1);
        let html = merged.render().into_string();
        assert!(html.starts_with("<meta charset=\"utf-8\">"), "{html}");
        assert_eq!(html.matches("charset").count(), 1);
        assert!(html.contains("<title>Leaf</title>"));
    }

    #[test]
    fn attributes_are_escaped() {
        let html = Head::new()
            .meta(Meta::name("description", "a \"quoted\" <b>"))
            .render()
            .into_string();
        assert!(
            html.contains("content=\"a &quot;quoted&quot; &lt;b&gt;\""),
            "{html}"
        );
    }
}
