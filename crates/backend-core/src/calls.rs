//! Calling functions from functions (Convex's `ctx.runQuery`, `ctx.runMutation` and
//! `ctx.runAction`).
//!
//! | caller | calls | the callee runs |
//! |---|---|---|
//! | query | [`QueryCtx::run_query`] | in the caller's transaction, at its snapshot; what it reads is part of the caller's read set (and subscription) |
//! | mutation | [`MutationCtx::run_query`], [`MutationCtx::run_mutation`] | in the caller's transaction: it sees the caller's writes so far, its reads are part of the caller's read set (a conflicting commit retries the whole caller) and its writes commit with the caller's; a nested mutation runs in a savepoint, so if it fails only its own writes are undone and the caller may handle the error and go on |
//! | action | [`ActionCtx::run_query`], [`ActionCtx::run_mutation`], [`ActionCtx::run_action`] | in its own transaction (a mutation is retried on conflicts and, on a follower node, runs on the committer) |
//!
//! Every call runs as the caller's identity (what the callee looks at of it counts as looked at
//! by the caller, whose result depends on it: see `auth`), reaches internal functions as well
//! as public ones, checks its arguments as a client's call would, and fails with the callee's
//! error as it is: a `ConvexError` keeps its message and data (passed on with `?`, it reaches
//! the client as the callee raised it), an internal failure stays internal (the client sees
//! only the generic message). Calls nest at most [`MAX_CALL_DEPTH`] levels deep, as in Convex; one more fails with
//! `MaximumCallDepthExceeded`, an error the caller may handle like any other.
//!
//! ```
//! use keel_backend_core::{FunctionError, FunctionRegistry, MutationCtx};
//! use keel_protocol::InternalMutationRef;
//! use keel_values::obj;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize, Serialize)]
//! struct Note { text: String }
//!
//! /// `notes:save`, by its typed reference (a path string works too).
//! const SAVE: InternalMutationRef<Note, String> = InternalMutationRef::new("notes:save");
//!
//! async fn save(ctx: MutationCtx, note: Note) -> Result<String, FunctionError> {
//!     if note.text.is_empty() {
//!         return Err(FunctionError::convex("empty note", obj! { "code" => "EMPTY" }));
//!     }
//!     let fields = keel_values::Object::from([("text".to_owned(), note.text.into())]);
//!     Ok(ctx.db().insert("notes", fields).await?.to_string())
//! }
//!
//! async fn save_twice(ctx: MutationCtx, note: Note) -> Result<(), FunctionError> {
//!     let first = ctx.run_mutation(SAVE, note).await?;
//!     // A failed nested mutation undoes its own writes only; this one is handled and the first
//!     // note is kept.
//!     if let Err(error) = ctx.run_mutation(SAVE, Note { text: String::new() }).await {
//!         tracing::info!(%error, first, "the second note was refused");
//!     }
//!     Ok(())
//! }
//!
//! let mut functions = FunctionRegistry::new();
//! functions.internal_mutation(SAVE, save);
//! functions.mutation("notes:saveTwice", save_twice);
//! ```

use keel_protocol::{AppFunction, CanonicalPath, kind};
use keel_values::{Object, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::Auth;
use crate::backend::Backend;
use crate::console::Console;
use crate::context::{ActionCtx, MutationCtx, QueryCtx};
use crate::error::FunctionError;
use crate::registry::{FunctionKind, Handler};
use crate::runner::Origin;
use crate::transaction::TxAccess;

/// How many levels deep calls may nest: a function a client called is at depth 0, the function
/// it calls at depth 1, and so on up to this depth (Convex's limit).
pub const MAX_CALL_DEPTH: u32 = 8;

/// How deep a function runs in a chain of calls (0: called by a client or by a service of the
/// backend).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CallDepth(u32);

impl CallDepth {
    /// A function nobody else called.
    pub(crate) const TOP: CallDepth = CallDepth(0);

    /// The depth as a number (as it travels between the nodes of a cluster).
    pub(crate) fn get(self) -> u32 {
        self.0
    }

    /// The depth `depth` if it is within the limit.
    pub(crate) fn checked(depth: u32) -> Option<CallDepth> {
        (depth <= MAX_CALL_DEPTH).then_some(CallDepth(depth))
    }

    /// The depth of a function called (at `path`) by one at this depth.
    fn deeper(self, path: &CanonicalPath) -> Result<CallDepth, FunctionError> {
        CallDepth::checked(self.0 + 1).ok_or_else(|| FunctionError::CallDepthExceeded {
            path: path.to_string(),
            limit: MAX_CALL_DEPTH,
        })
    }
}

/// What a function's context needs to call other functions: the backend, how deep the
/// function runs, and the console of the execution it is part of (the functions it calls in
/// its transaction log there too).
#[derive(Clone)]
pub(crate) struct Calls {
    backend: Backend,
    depth: CallDepth,
    console: Console,
}

impl Calls {
    pub(crate) fn new(backend: Backend, depth: CallDepth, console: Console) -> Calls {
        Calls {
            backend,
            depth,
            console,
        }
    }

    /// The console of the execution.
    pub(crate) fn console(&self) -> &Console {
        &self.console
    }

    /// The app's functions.
    pub(crate) fn registry(&self) -> &crate::registry::FunctionRegistry {
        &self.backend.inner.functions
    }

    /// The backend the function runs on (for its services, such as the storage).
    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }
}

impl Calls {
    /// Makes one call as the caller (`auth`): `run` runs the callee (in one way or another),
    /// whose result is decoded into the type the caller asked for.
    async fn make<R: DeserializeOwned>(
        &self,
        auth: &Auth,
        path: &str,
        args: impl Serialize,
        run: impl AsyncFnOnce(Call) -> Result<Value, FunctionError>,
    ) -> Result<R, FunctionError> {
        let path = keel_protocol::normalize_udf_path(path).map_err(FunctionError::InvalidCall)?;
        let args = keel_values::to_args(&args)
            .map_err(|e| FunctionError::uncaught(format!("the arguments for {path}: {e}")))?;
        let depth = self.depth.deeper(&path)?;
        let call = Call {
            path: path.clone(),
            args,
            auth: auth.clone(),
            calls: Calls::new(self.backend.clone(), depth, self.console.clone()),
        };
        let value = run(call).await?;
        keel_values::from_value(&value)
            .map_err(|e| FunctionError::uncaught(format!("the result of {path}: {e}")))
    }
}

/// One call a function makes: the callee's path and arguments, the caller's identity (and its
/// record of what was looked at, which the callee's observations join), and the callee's own
/// means to call further (at its depth).
struct Call {
    path: CanonicalPath,
    args: Object,
    auth: Auth,
    calls: Calls,
}

impl Call {
    /// Where the call comes from: the app's own code, at the callee's depth.
    fn origin(&self) -> Origin {
        Origin::App(self.calls.depth)
    }

    /// The callee's handler of the `kind` asked for.
    fn handler(&self, kind: FunctionKind) -> Result<Handler, FunctionError> {
        self.calls.backend.function(&self.path, kind, self.origin())
    }

    /// Runs a query in the caller's transaction.
    async fn query_in(self, tx: &TxAccess) -> Result<Value, FunctionError> {
        let Handler::Query(handler) = self.handler(FunctionKind::Query)? else {
            unreachable!("function() checked the kind");
        };
        let span = tracing::debug_span!("query", path = %self.path, depth = self.calls.depth.get());
        // The callee notes what it looks at into the caller's record: the caller's result
        // depends on it.
        let ctx = QueryCtx::new(tx.clone(), self.auth, self.calls);
        tracing::Instrument::instrument(handler(ctx, self.args), span).await
    }

    /// Runs a mutation in a savepoint of the caller's transaction.
    async fn mutation_in(self, tx: &TxAccess) -> Result<Value, FunctionError> {
        let Handler::Mutation(handler) = self.handler(FunctionKind::Mutation)? else {
            unreachable!("function() checked the kind");
        };
        let span =
            tracing::debug_span!("mutation", path = %self.path, depth = self.calls.depth.get());
        let nested = tx.begin_nested().await?;
        let ctx = MutationCtx::new(nested.access(), self.auth, self.calls);
        let result = tracing::Instrument::instrument(handler(ctx, self.args), span).await;
        nested.end(result.is_ok()).await;
        result
    }

    /// Runs a query in its own transaction, at the latest commit; what its result observed of
    /// the caller (a cached result carries it) joins the caller's record.
    async fn query(self) -> Result<Value, FunctionError> {
        let origin = self.origin();
        let backend = &self.calls.backend;
        let outcome = backend
            .query_shared(&self.path, &self.args, self.auth.identity(), None, origin)
            .await;
        self.auth.note(outcome.observed());
        outcome.to_result()
    }

    /// Runs a mutation in its own transaction.
    async fn mutation(self) -> Result<Value, FunctionError> {
        let origin = self.origin();
        let backend = &self.calls.backend;
        let run = backend.mutation(&self.path, self.args, self.auth.identity(), None, origin);
        Ok(Box::pin(run).await?.0)
    }

    /// Runs an action.
    async fn action(self) -> Result<Value, FunctionError> {
        let origin = self.origin();
        let backend = &self.calls.backend;
        let identity = self.auth.identity();
        Box::pin(backend.action(&self.path, self.args, identity, origin, None)).await
    }
}

impl QueryCtx {
    /// Runs a query (public or internal) in this query's transaction, as the caller, and
    /// decodes its result: what it reads is part of this query's result's dependencies.
    pub async fn run_query<R: DeserializeOwned, A: Serialize>(
        &self,
        function: impl AppFunction<kind::Query, A, R>,
        args: A,
    ) -> Result<R, FunctionError> {
        let tx = self.db.tx();
        (self.calls)
            .make(&self.auth, function.path(), args, async |call| {
                call.query_in(tx).await
            })
            .await
    }
}

impl MutationCtx {
    /// Runs a query (public or internal) in this mutation's transaction, as the caller: it sees
    /// this mutation's writes so far, and what it reads is part of this mutation's read set.
    pub async fn run_query<R: DeserializeOwned, A: Serialize>(
        &self,
        function: impl AppFunction<kind::Query, A, R>,
        args: A,
    ) -> Result<R, FunctionError> {
        let tx = self.tx();
        (self.calls)
            .make(&self.auth, function.path(), args, async |call| {
                call.query_in(tx).await
            })
            .await
    }

    /// Runs a mutation (public or internal) in this mutation's transaction, as the caller: its
    /// writes commit with this mutation's; if it fails, its own writes are undone (this
    /// mutation's stay) and its error is returned, to be handled or passed on. While it runs,
    /// this mutation's database handle waits its turn: await the call before using `ctx.db()`.
    pub async fn run_mutation<R: DeserializeOwned, A: Serialize>(
        &self,
        function: impl AppFunction<kind::Mutation, A, R>,
        args: A,
    ) -> Result<R, FunctionError> {
        let tx = self.tx();
        (self.calls)
            .make(&self.auth, function.path(), args, async |call| {
                Box::pin(call.mutation_in(tx)).await
            })
            .await
    }
}

impl ActionCtx {
    /// Runs a query (public or internal) in its own transaction at the latest commit, as the
    /// caller.
    pub async fn run_query<R: DeserializeOwned, A: Serialize>(
        &self,
        function: impl AppFunction<kind::Query, A, R>,
        args: A,
    ) -> Result<R, FunctionError> {
        (self.calls)
            .make(&self.auth, function.path(), args, Call::query)
            .await
    }

    /// Runs a mutation (public or internal) in its own transaction (retried on conflicts), as
    /// the caller.
    pub async fn run_mutation<R: DeserializeOwned, A: Serialize>(
        &self,
        function: impl AppFunction<kind::Mutation, A, R>,
        args: A,
    ) -> Result<R, FunctionError> {
        (self.calls)
            .make(&self.auth, function.path(), args, Call::mutation)
            .await
    }

    /// Runs another action (public or internal), as the caller.
    pub async fn run_action<R: DeserializeOwned, A: Serialize>(
        &self,
        function: impl AppFunction<kind::Action, A, R>,
        args: A,
    ) -> Result<R, FunctionError> {
        (self.calls)
            .make(&self.auth, function.path(), args, Call::action)
            .await
    }
}
