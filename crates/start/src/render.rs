//! Running a matched page: `before_load`s serially (root → leaf), then every loader in
//! parallel, then components from the leaf outwards (each wrapping its child's markup as the
//! outlet), with the error or not-found boundary at the shallowest failure.

use futures::future::join_all;
use http::StatusCode;
use maud::{Markup, html};

use crate::boundary::{default_catch_boundary, not_found};
use crate::context::RouteContext;
use crate::error::RouteError;
use crate::head::Head;
use crate::matching::match_path;
use crate::params::Params;
use crate::route::{Match, Route};

/// What rendering a page produced.
pub(crate) enum Outcome {
    /// Send the browser elsewhere.
    Redirect { to: String, status: StatusCode },
    /// A page body with its merged head.
    Page {
        status: StatusCode,
        head: Head,
        body: Markup,
        trace: RenderTrace,
    },
}

/// What happened while rendering, for the devtools panel.
#[derive(Clone, Debug, Default)]
pub(crate) struct RenderTrace {
    /// Ids of the matched routes, root first.
    pub(crate) matched: Vec<String>,
    /// Path parameters.
    pub(crate) params: Params,
    /// Whether each matched route's loader produced data.
    pub(crate) loaded: Vec<bool>,
    /// The route that failed and the error's code.
    pub(crate) failure: Option<(String, &'static str)>,
}

/// Renders `base`'s path through the route tree.
pub(crate) async fn run(root: &Route, base: RouteContext) -> Outcome {
    let path = base.path().to_owned();
    let (chain, params, matched) = match match_path(root, &path) {
        Some((chain, params)) => (chain, params, true),
        None => (vec![root], Params::default(), false),
    };

    // before_load: serial, parent → child; each adds to the context below it.
    let mut contexts: Vec<RouteContext> = Vec::with_capacity(chain.len());
    let mut ctx = base.child(params.clone(), None);
    let mut failure: Option<(usize, RouteError)> = None;
    for (i, route) in chain.iter().enumerate() {
        if let Some(before_load) = &route.before_load {
            match before_load(ctx.clone()).await {
                Ok(additions) => ctx = ctx.child(params.clone(), Some(additions)),
                Err(error) => {
                    failure = Some((i, error));
                    break;
                }
            }
        }
        contexts.push(ctx.clone());
    }

    // Loaders: all at once; a failure does not stop the others.
    let results = join_all(contexts.iter().zip(&chain).map(|(ctx, route)| {
        let ctx = ctx.clone();
        async move {
            match &route.loader {
                Some(loader) => loader(ctx).await.map(Some),
                None => Ok(None),
            }
        }
    }))
    .await;
    let mut matches = Vec::with_capacity(results.len());
    let mut redirect = None;
    for (i, result) in results.into_iter().enumerate() {
        let data = match result {
            Ok(data) => data,
            Err(error) => {
                if let RouteError::Redirect { to, status } = &error {
                    redirect.get_or_insert((to.clone(), *status));
                }
                if failure.as_ref().is_none_or(|(j, _)| i < *j) {
                    failure = Some((i, error));
                }
                None
            }
        };
        matches.push(Match {
            route_id: chain[i].id.clone(),
            context: contexts[i].clone(),
            data,
        });
    }
    if let Some((_, RouteError::Redirect { to, status })) = &failure {
        return Outcome::Redirect {
            to: to.clone(),
            status: *status,
        };
    }
    if let Some((to, status)) = redirect {
        return Outcome::Redirect { to, status };
    }
    if !matched && failure.is_none() {
        failure = Some((1, RouteError::NotFound));
    }
    let mut trace = RenderTrace {
        matched: if matched {
            chain.iter().map(|r| r.id.clone()).collect()
        } else {
            Vec::new()
        },
        params: params.clone(),
        loaded: matches.iter().map(|m| m.data.is_some()).collect(),
        failure: None,
    };

    let Some((at, error)) = failure else {
        let head = Head::merge(heads(&chain, &matches));
        let body = wrap(&chain, &matches, matches.len(), html! {});
        return Outcome::Page {
            status: StatusCode::OK,
            head,
            body,
            trace,
        };
    };
    // A pushed render that missed a query renders again once it is subscribed: not a failure.
    if let RouteError::Internal(detail) = &error
        && !base.request.missed_live_results()
    {
        tracing::error!(route = %chain.get(at).map_or("?", |r| r.id.as_str()), %path, %detail, "page failed");
    }
    trace.failure = Some((
        chain.get(at).map_or_else(|| path.clone(), |r| r.id.clone()),
        error.code(),
    ));
    let rendered = at.min(matches.len());
    let boundary_match = Match {
        route_id: chain.get(at).unwrap_or(&chain[chain.len() - 1]).id.clone(),
        context: contexts.get(at).or(contexts.last()).cloned().unwrap_or(ctx),
        data: None,
    };
    let nearest = at.min(chain.len() - 1);
    let boundary = match &error {
        RouteError::NotFound => match (0..=nearest)
            .rev()
            .find_map(|j| chain[j].not_found_component.as_ref())
        {
            Some(component) => component(&boundary_match),
            None => not_found(&boundary_match),
        },
        _ => match (0..=nearest)
            .rev()
            .find_map(|j| chain[j].error_component.as_ref())
        {
            Some(component) => component(&boundary_match, &error),
            None => default_catch_boundary(&boundary_match, &error),
        },
    };
    let title = match &error {
        RouteError::NotFound => "Not Found",
        _ => "Error",
    };
    let head = Head::merge(
        heads(&chain[..rendered], &matches[..rendered])
            .into_iter()
            .chain([Head::new().title(title)]),
    );
    Outcome::Page {
        status: error.status(),
        head,
        body: wrap(&chain, &matches, rendered, boundary),
        trace,
    }
}

/// The heads of the matches.
fn heads(chain: &[&Route], matches: &[Match]) -> Vec<Head> {
    chain
        .iter()
        .zip(matches)
        .filter_map(|(route, m)| route.head.as_ref().map(|head| head(m)))
        .collect()
}

/// Renders matches `0..depth` around `inner`, from the deepest outwards.
fn wrap(chain: &[&Route], matches: &[Match], depth: usize, inner: Markup) -> Markup {
    let mut outlet = inner;
    for i in (0..depth).rev() {
        if let Some(component) = &chain[i].component {
            outlet = component(&matches[i], outlet);
        }
    }
    outlet
}
