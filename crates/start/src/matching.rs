//! Matching a request path against the route tree: the chain of routes from the root to the
//! leaf, and the path parameters (a [`Params`]).

use crate::params::{Params, percent_decode};
use crate::route::{Route, Segment};

/// The routes from the root to the matched leaf, with the parameters; `None` when nothing
/// matches.
pub(crate) fn match_path<'r>(root: &'r Route, path: &str) -> Option<(Vec<&'r Route>, Params)> {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let mut chain = Vec::new();
    let mut params = Vec::new();
    walk(root, &segments, &mut chain, &mut params).then_some((chain, Params(params)))
}

fn walk<'r>(
    route: &'r Route,
    segments: &[String],
    chain: &mut Vec<&'r Route>,
    params: &mut Vec<(String, String)>,
) -> bool {
    let params_before = params.len();
    let mut rest = segments;
    for pattern in &route.segments {
        match pattern {
            Segment::Static(text) => match rest.split_first() {
                Some((first, tail)) if first == text => rest = tail,
                _ => return undo(params, params_before),
            },
            Segment::Param(name) => match rest.split_first() {
                Some((first, tail)) => {
                    params.push((name.clone(), first.clone()));
                    rest = tail;
                }
                None => return undo(params, params_before),
            },
            Segment::Splat(name) => {
                if rest.is_empty() {
                    return undo(params, params_before);
                }
                params.push((name.clone(), rest.join("/")));
                rest = &[];
            }
        }
    }
    chain.push(route);
    for child in &route.children {
        if walk(child, rest, chain, params) {
            return true;
        }
    }
    if rest.is_empty() && route.component.is_some() {
        return true;
    }
    chain.pop();
    undo(params, params_before)
}

fn undo(params: &mut Vec<(String, String)>, len: usize) -> bool {
    params.truncate(len);
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use maud::html;

    fn leaf(path: &str) -> Route {
        Route::new(path).component(|_, _| html! {})
    }

    fn tree() -> Route {
        Route::root()
            .component(|_, o| o)
            .child(leaf(""))
            .child(
                Route::new("posts")
                    .component(|_, o| o)
                    .child(leaf(""))
                    .child(leaf("{id}"))
                    .child(leaf("new")),
            )
            .child(leaf("files/{*rest}"))
            .child(Route::new("layout-only").child(leaf("inner")))
            .build()
            .unwrap()
    }

    fn ids(path: &str) -> Option<(Vec<String>, Params)> {
        let root = tree();
        match_path(&root, path)
            .map(|(chain, params)| (chain.iter().map(|r| r.id.clone()).collect(), params))
    }

    #[test]
    fn matches_chains_and_params() {
        assert_eq!(ids("/").unwrap().0, ["/", "/"]);
        assert_eq!(ids("/posts").unwrap().0, ["/", "/posts", "/posts/"]);
        assert_eq!(ids("/posts/").unwrap().0, ["/", "/posts", "/posts/"]);
        let (chain, params) = ids("/posts/abc%20d").unwrap();
        assert_eq!(chain, ["/", "/posts", "/posts/{id}"]);
        assert_eq!(params.get("id"), Some("abc d"));
        // Static beats param, whatever the declaration order.
        let (chain, params) = ids("/posts/new").unwrap();
        assert_eq!(chain, ["/", "/posts", "/posts/new"]);
        assert_eq!(params.get("id"), None);
        let (_, params) = ids("/files/a/b/c").unwrap();
        assert_eq!(params.get("rest"), Some("a/b/c"));
        assert_eq!(ids("/layout-only/inner").unwrap().0.len(), 3);
    }

    #[test]
    fn unmatched_paths_are_none() {
        for path in ["/nope", "/posts/a/b", "/files", "/layout-only"] {
            assert!(ids(path).is_none(), "{path}");
        }
    }
}
