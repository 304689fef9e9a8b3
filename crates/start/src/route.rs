//! [`Route`]: one node of the route tree — a path pattern, children rendered in its outlet,
//! and the per-route hooks (`before_load`, `loader`, `head`, component, error and not-found
//! components), and what those hooks see: a [`Match`], one matched route's context and its
//! loader's [`LoaderData`].

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use maud::Markup;

use crate::context::{ContextAdditions, RouteContext};
use crate::error::{RouteError, StartError};
use crate::head::Head;

pub(crate) type BeforeLoadFn = Arc<
    dyn Fn(RouteContext) -> BoxFuture<'static, Result<ContextAdditions, RouteError>> + Send + Sync,
>;
pub(crate) type LoaderFn =
    Arc<dyn Fn(RouteContext) -> BoxFuture<'static, Result<LoaderData, RouteError>> + Send + Sync>;
pub(crate) type HeadFn = Arc<dyn Fn(&Match) -> Head + Send + Sync>;
pub(crate) type ComponentFn = Arc<dyn Fn(&Match, Markup) -> Markup + Send + Sync>;
pub(crate) type ErrorComponentFn = Arc<dyn Fn(&Match, &RouteError) -> Markup + Send + Sync>;
pub(crate) type NotFoundFn = Arc<dyn Fn(&Match) -> Markup + Send + Sync>;

/// What a loader produced, read back by the route's component with [`Match::data`].
#[derive(Clone)]
pub struct LoaderData(pub(crate) Arc<dyn Any + Send + Sync>);

impl std::fmt::Debug for LoaderData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoaderData(..)")
    }
}

/// One segment of a route path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Matches exactly this text.
    Static(String),
    /// `{name}`: matches one non-empty segment.
    Param(String),
    /// `{*name}`: matches the rest of the path (at least one segment).
    Splat(String),
}

/// A node of the route tree.
///
/// ```
/// use keel_start::{Route, RouteError};
/// use maud::html;
/// let posts = Route::new("posts")
///     .component(|_m, outlet| html! { h1 { "Posts" } (outlet) })
///     .child(Route::new("").component(|_m, _| html! { p { "Pick a post" } }))
///     .child(
///         Route::new("{id}")
///             .loader(|ctx| async move {
///                 let id = ctx.param("id").unwrap_or_default().to_owned();
///                 if id == "missing" { return Err(RouteError::NotFound) }
///                 Ok(id)
///             })
///             .component(|m, _| html! { p { (m.data::<String>().cloned().unwrap_or_default()) } }),
///     );
/// let root = Route::root().child(posts);
/// # let _ = root;
/// ```
#[derive(Clone)]
pub struct Route {
    pub(crate) path: String,
    pub(crate) segments: Vec<Segment>,
    pub(crate) children: Vec<Route>,
    pub(crate) before_load: Option<BeforeLoadFn>,
    pub(crate) loader: Option<LoaderFn>,
    pub(crate) head: Option<HeadFn>,
    pub(crate) component: Option<ComponentFn>,
    pub(crate) error_component: Option<ErrorComponentFn>,
    pub(crate) not_found_component: Option<NotFoundFn>,
    /// The full pattern from the root, set when the tree is built (`/posts/{id}`).
    pub(crate) id: String,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("path", &self.path)
            .field("children", &self.children)
            .finish_non_exhaustive()
    }
}

impl Route {
    /// The root route (path `/`): its component is the layout around every page.
    pub fn root() -> Route {
        Route::new("")
    }

    /// A route matching `path` below its parent: static segments, `{param}` (one segment),
    /// `{*rest}` (the remainder); `""` is the parent's index route.
    pub fn new(path: &str) -> Route {
        Route {
            path: path.trim_matches('/').to_owned(),
            segments: Vec::new(),
            children: Vec::new(),
            before_load: None,
            loader: None,
            head: None,
            component: None,
            error_component: None,
            not_found_component: None,
            id: String::new(),
        }
    }

    /// Adds a child route, rendered in this route's outlet.
    pub fn child(mut self, child: Route) -> Route {
        self.children.push(child);
        self
    }

    /// Runs before any loader, serially from the root to the leaf; may redirect or raise
    /// not-found; what it returns is added to the context of this route's loader and of every
    /// child.
    pub fn before_load<F, Fut>(mut self, f: F) -> Route
    where
        F: Fn(RouteContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ContextAdditions, RouteError>> + Send + 'static,
    {
        self.before_load = Some(Arc::new(move |ctx| Box::pin(f(ctx))));
        self
    }

    /// Loads the route's data; the loaders of all matched routes run in parallel after every
    /// `before_load`. The component reads the value with [`Match::data::<T>`](Match::data).
    pub fn loader<T, F, Fut>(mut self, f: F) -> Route
    where
        T: Send + Sync + 'static,
        F: Fn(RouteContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, RouteError>> + Send + 'static,
    {
        let f = Arc::new(f);
        self.loader = Some(Arc::new(move |ctx| {
            let f = f.clone();
            Box::pin(async move {
                let value = f(ctx).await?;
                Ok(LoaderData(Arc::new(value)))
            })
        }));
        self
    }

    /// The route's head tags (merged across matches; the deepest title wins).
    pub fn head<F>(mut self, f: F) -> Route
    where
        F: Fn(&Match) -> Head + Send + Sync + 'static,
    {
        self.head = Some(Arc::new(f));
        self
    }

    /// Renders the route; `outlet` is the rendered child (empty for a leaf).
    pub fn component<F>(mut self, f: F) -> Route
    where
        F: Fn(&Match, Markup) -> Markup + Send + Sync + 'static,
    {
        self.component = Some(Arc::new(f));
        self
    }

    /// Renders a failure of this route or a child without its own (default:
    /// [`crate::boundary::default_catch_boundary`]).
    pub fn error_component<F>(mut self, f: F) -> Route
    where
        F: Fn(&Match, &RouteError) -> Markup + Send + Sync + 'static,
    {
        self.error_component = Some(Arc::new(f));
        self
    }

    /// Renders "not found" at this route or below (default: [`crate::boundary::not_found`]).
    pub fn not_found_component<F>(mut self, f: F) -> Route
    where
        F: Fn(&Match) -> Markup + Send + Sync + 'static,
    {
        self.not_found_component = Some(Arc::new(f));
        self
    }

    /// Parses every path of the tree, sets ids, orders children (static before index before
    /// param before splat) and rejects duplicates.
    pub(crate) fn build(mut self) -> Result<Route, StartError> {
        let mut seen = std::collections::HashSet::new();
        self.prepare("", &mut seen)?;
        Ok(self)
    }

    fn prepare(
        &mut self,
        parent: &str,
        seen: &mut std::collections::HashSet<String>,
    ) -> Result<(), StartError> {
        self.segments = parse_path(&self.path)?;
        self.id = if self.path.is_empty() {
            if parent.is_empty() {
                "/".to_owned()
            } else {
                format!("{parent}/")
            }
        } else {
            format!("{}/{}", parent.trim_end_matches('/'), self.path)
        };
        if self.children.is_empty() && !seen.insert(self.id.clone()) {
            return Err(StartError::DuplicateRoute(self.id.clone()));
        }
        let base = self.id.trim_end_matches('/').to_owned();
        for child in &mut self.children {
            child.prepare(&base, seen)?;
        }
        self.children.sort_by_key(|c| match c.segments.first() {
            Some(Segment::Static(_)) => 0,
            None => 1,
            Some(Segment::Param(_)) => 2,
            Some(Segment::Splat(_)) => 3,
        });
        Ok(())
    }
}

/// Splits a route path into segments.
fn parse_path(path: &str) -> Result<Vec<Segment>, StartError> {
    let invalid = |reason: &str| StartError::InvalidPath {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let mut segments = Vec::new();
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        let segment = if let Some(inner) = part.strip_prefix('{') {
            let name = inner
                .strip_suffix('}')
                .ok_or_else(|| invalid("a `{` is not closed"))?;
            if let Some(rest) = name.strip_prefix('*') {
                if i + 1 != parts.len() {
                    return Err(invalid("`{*name}` must be the last segment"));
                }
                Segment::Splat(rest.to_owned())
            } else {
                Segment::Param(name.to_owned())
            }
        } else {
            if part.contains(['{', '}']) {
                return Err(invalid("braces must enclose a whole segment"));
            }
            Segment::Static((*part).to_owned())
        };
        if let Segment::Param(name) | Segment::Splat(name) = &segment
            && (name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            return Err(invalid("parameter names are [A-Za-z0-9_]+"));
        }
        segments.push(segment);
    }
    Ok(segments)
}

/// One matched route while rendering: its context and its loader's data.
pub struct Match {
    pub(crate) route_id: String,
    pub(crate) context: RouteContext,
    pub(crate) data: Option<LoaderData>,
}

impl std::fmt::Debug for Match {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Match")
            .field("route_id", &self.route_id)
            .field("has_data", &self.data.is_some())
            .finish_non_exhaustive()
    }
}

impl Match {
    /// The route's full pattern (`/posts/{id}`).
    pub fn route_id(&self) -> &str {
        &self.route_id
    }

    /// The router context of this match.
    pub fn context(&self) -> &RouteContext {
        &self.context
    }

    /// The loader's value, when the loader returned a `T`.
    pub fn data<T: 'static>(&self) -> Option<&T> {
        self.data.as_ref()?.0.downcast_ref::<T>()
    }

    /// Whether a link to `href` is active for this request: `exact` compares whole paths
    /// (Home), otherwise `href` may be a prefix at a segment boundary (Posts).
    pub fn is_active(&self, href: &str, exact: bool) -> bool {
        let path = self.context.path();
        let path = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        if exact || href == "/" {
            return path == href;
        }
        path == href || path.starts_with(&format!("{}/", href.trim_end_matches('/')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_path("posts/{id}").unwrap(),
            vec![Segment::Static("posts".into()), Segment::Param("id".into())]
        );
        assert_eq!(
            parse_path("files/{*rest}").unwrap()[1],
            Segment::Splat("rest".into())
        );
        for bad in ["{id", "a{b}", "{*rest}/x", "{}", "{a-b}"] {
            assert_eq!(parse_path(bad).unwrap_err().code(), "InvalidPath", "{bad}");
        }
        let dup = Route::root()
            .child(Route::new("a"))
            .child(Route::new("/a/"))
            .build();
        assert_eq!(dup.unwrap_err(), StartError::DuplicateRoute("/a".into()));
    }
}
