//! What the backend shows and does for its operators — the dashboard and the `keel` commands
//! that take the admin key: the registered functions ([`Backend::functions`]), a function run
//! as the app's own code with its log lines ([`Backend::run_as_operator`]), a scheduled job
//! canceled ([`Backend::cancel_scheduled`]) and the load of the sync sessions
//! ([`Backend::sync_load`]).
//!
//! None of this is reachable by a client: the transports put it behind the admin key.

use keel_protocol::CanonicalPath;
use keel_values::{DocumentId, Object, Value};
use serde::Serialize;

use crate::backend::Backend;
use crate::calls::CallDepth;
use crate::console::Logged;
use crate::error::FunctionError;
use crate::identity::Identity;
use crate::registry::{FunctionKind, FunctionRegistry, Visibility};
use crate::runner::Origin;

/// A registered function as an operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionInfo {
    /// Its canonical path (`posts:list`).
    pub path: String,
    /// Query, mutation or action.
    pub kind: FunctionKind,
    /// Who may call it.
    pub visibility: Visibility,
}

/// How busy the sync sessions keep this backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SyncLoad {
    /// Open sync sessions (WebSocket connections of clients, and in-process ones).
    pub sessions: u64,
    /// Queries those sessions keep subscribed.
    pub subscriptions: u64,
}

/// Whether a path belongs to the backend itself (`_keel/…`, `_system/…`) rather than the app.
fn is_backend_own(path: &CanonicalPath) -> bool {
    path.module.starts_with('_')
}

impl FunctionRegistry {
    /// The app's functions, public and internal, sorted by path; the backend's own
    /// (`_keel/…`, `_system/…`) are left out.
    pub fn functions(&self) -> Vec<FunctionInfo> {
        let mut functions: Vec<FunctionInfo> = self
            .entries()
            .filter(|(path, _)| !is_backend_own(path))
            .map(|(path, function)| FunctionInfo {
                path: path.to_string(),
                kind: function.kind(),
                visibility: function.visibility,
            })
            .collect();
        functions.sort_by(|a, b| a.path.cmp(&b.path));
        functions
    }
}

impl Backend {
    /// The app's functions (see [`FunctionRegistry::functions`]).
    pub fn functions(&self) -> Vec<FunctionInfo> {
        self.inner.functions.functions()
    }

    /// Runs the app's function at `path` — public or internal, as the app's own code reaches
    /// it — with `args` as `identity`, and returns its outcome with its log lines. Convex's
    /// dashboard runs functions this way; the backend's own functions (`_keel/…`) stay out
    /// of reach, as a path with no function.
    pub async fn run_as_operator(
        &self,
        path: &CanonicalPath,
        args: Object,
        identity: &Identity,
    ) -> Logged<Value> {
        let kind = (!is_backend_own(path))
            .then(|| self.inner.functions.get(path).map(|f| f.kind()))
            .flatten();
        let origin = Origin::App(CallDepth::TOP);
        match kind {
            None => Logged {
                result: Err(self.not_found(path)),
                log_lines: Vec::new(),
            },
            Some(FunctionKind::Query) => {
                self.query_logged(path, &args, identity, None, origin).await
            }
            Some(FunctionKind::Mutation) => {
                let logged = self
                    .mutation_logged(path, args, identity, None, origin)
                    .await;
                Logged {
                    result: logged.result.map(|(value, _)| value),
                    log_lines: logged.log_lines,
                }
            }
            Some(FunctionKind::Action) => {
                self.action_logged(path, args, identity, origin, None).await
            }
        }
    }

    /// Cancels the scheduled function `id` as `ctx.scheduler().cancel(id)` does: a pending one
    /// will not run, a finished one stays as it finished.
    pub async fn cancel_scheduled(&self, id: DocumentId) -> Result<(), FunctionError> {
        crate::scheduler::cancel_as_app(self, id).await
    }

    /// The open sync sessions and their subscribed queries, as the transports count them.
    pub fn sync_load(&self) -> SyncLoad {
        let (sessions, subscriptions) = self.inner.metrics.sync_load();
        SyncLoad {
            sessions,
            subscriptions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_are_listed_sorted_without_the_backends_own() {
        let mut functions = FunctionRegistry::new();
        functions.mutation("b:write", |_ctx, _args: serde_json::Value| async { Ok(1) });
        functions.internal_query("a:secret", |_ctx, _args: serde_json::Value| async { Ok(2) });
        functions.internal_mutation("_keel/x:y", |_ctx, _args: serde_json::Value| async {
            Ok(3)
        });
        let listed = functions.functions();
        assert_eq!(
            listed,
            vec![
                FunctionInfo {
                    path: "a:secret".into(),
                    kind: FunctionKind::Query,
                    visibility: Visibility::Internal,
                },
                FunctionInfo {
                    path: "b:write".into(),
                    kind: FunctionKind::Mutation,
                    visibility: Visibility::Public,
                },
            ]
        );
    }
}
