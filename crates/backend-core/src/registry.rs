//! The function registry: queries, mutations and actions by path (`module:function`), each
//! public or internal.
//!
//! A public function is what clients call (the HTTP API, the sync protocol, the web tier). An
//! internal one is only for the app's own code: other functions (`ctx.run_query`,
//! `ctx.run_mutation`, `ctx.run_action`) and the backend's own services; to a client it does
//! not exist — calling it gets the same error as a path no function is registered under, and no
//! error message names it — as in Convex.
//!
//! Registering a function is one line; its arguments are any `Deserialize` type and its result
//! any `Serialize` type. It is registered under a path, or under a typed reference
//! ([`keel_protocol::FunctionRef`]) whose argument and result types the compiler checks against
//! the function's: the same reference is what the clients call it with. Arguments are checked as Convex checks a function's argument validators
//! — a field the type does not declare is refused, a Rust integer takes a JavaScript number
//! holding a whole value but not an int64 — with `ArgumentValidationError`s that name the path;
//! [`keel_values::typed`] has the table of which Rust type stands for which Convex validator.
//!
//! ```
//! use keel_backend_core::{FunctionError, FunctionRegistry, QueryCtx};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Greet { name: String }
//!
//! async fn greet(_ctx: QueryCtx, args: Greet) -> Result<String, FunctionError> {
//!     Ok(format!("Hello, {}!", args.name))
//! }
//!
//! async fn count(_ctx: QueryCtx, _args: serde_json::Value) -> Result<u32, FunctionError> {
//!     Ok(3)
//! }
//!
//! /// The app's references (its `api`), what callers name the functions by.
//! const GREET: keel_protocol::QueryRef<Greet, String> = keel_protocol::QueryRef::new("greetings:greet");
//!
//! let mut functions = FunctionRegistry::new();
//! functions.query(GREET, greet);
//! functions.internal_query("greetings:count", count);
//! assert!(functions.contains("greetings:greet"));
//! assert!(functions.contains("greetings:count"));
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt;
use keel_protocol::{CanonicalPath, FunctionName, Internal, Public, kind};
use keel_values::{Object, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::{ActionCtx, MutationCtx, QueryCtx};
use crate::error::FunctionError;
use crate::http_action::HttpRoutes;
use crate::scheduler::Crons;

/// A boxed, sendable future.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
pub(crate) type HandlerFn<C> =
    Arc<dyn Fn(C, Object) -> BoxFuture<Result<Value, FunctionError>> + Send + Sync>;

/// What kind of function a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionKind {
    /// Read-only, deterministic, reactive.
    Query,
    /// A transaction that may write.
    Mutation,
    /// May do anything (I/O included); calls queries and mutations.
    Action,
}

impl FunctionKind {
    /// The kind's name as Convex spells it in messages.
    pub fn name(self) -> &'static str {
        match self {
            FunctionKind::Query => "query",
            FunctionKind::Mutation => "mutation",
            FunctionKind::Action => "action",
        }
    }
}

/// Who may call a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Clients and the app's own code.
    Public,
    /// Only the app's own code (other functions, the backend's services); unknown to clients.
    Internal,
}

/// A function's code, by kind.
#[derive(Clone)]
pub(crate) enum Handler {
    Query(HandlerFn<QueryCtx>),
    Mutation(HandlerFn<MutationCtx>),
    Action(HandlerFn<ActionCtx>),
}

/// A registered function: its code and who may call it.
#[derive(Clone)]
pub(crate) struct Function {
    pub(crate) handler: Handler,
    pub(crate) visibility: Visibility,
}

impl Function {
    pub(crate) fn kind(&self) -> FunctionKind {
        match self.handler {
            Handler::Query(_) => FunctionKind::Query,
            Handler::Mutation(_) => FunctionKind::Mutation,
            Handler::Action(_) => FunctionKind::Action,
        }
    }
}

/// All functions of an app, by canonical path.
#[derive(Clone, Default)]
pub struct FunctionRegistry {
    /// Keyed by the parsed path, so that a call's path (parsed once) looks its function up
    /// without building a string.
    functions: HashMap<CanonicalPath, Function>,
    /// The app's crons (run by the scheduler).
    crons: Crons,
    /// The app's HTTP actions (see `http_action`).
    http_routes: HttpRoutes,
}

fn wrap<C, A, R, F, Fut>(f: F) -> HandlerFn<C>
where
    C: Send + 'static,
    F: Fn(C, A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, FunctionError>> + Send + 'static,
    A: DeserializeOwned + Send + 'static,
    R: Serialize,
{
    let f = Arc::new(f);
    Arc::new(move |ctx: C, args: Object| {
        let f = f.clone();
        // A panic in a function (a bug in app code) fails that call with an internal error
        // instead of tearing down the socket or the HTTP connection that ran it.
        let call = AssertUnwindSafe(async move {
            let args = Value::Object(args);
            let args =
                keel_values::from_args::<A>(&args).map_err(FunctionError::InvalidArguments)?;
            let result = f(ctx, args).await?;
            keel_values::to_value(&result).map_err(|e| {
                FunctionError::internal(format!("the function's result is not a Convex value: {e}"))
            })
        });
        Box::pin(call.catch_unwind().map(|outcome| {
            outcome.unwrap_or_else(|panic| {
                Err(FunctionError::internal(format!(
                    "the function panicked: {}",
                    panic_message(panic.as_ref())
                )))
            })
        }))
    })
}

/// The message of a panic payload (`panic!` with a literal or a formatted message).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(message) = payload.downcast_ref::<&str>() {
        message
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message
    } else {
        "(no message)"
    }
}

impl FunctionRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn insert(&mut self, path: &str, handler: Handler, visibility: Visibility) -> &mut Self {
        let canonical = keel_protocol::normalize_udf_path(path)
            .unwrap_or_else(|e| panic!("invalid function path {path:?}: {e}"));
        let function = Function {
            handler,
            visibility,
        };
        assert!(
            !self.functions.contains_key(&canonical),
            "function {canonical} is registered twice"
        );
        self.functions.insert(canonical, function);
        self
    }

    /// Registers a public query under `name`: a path, or a typed reference ([`QueryRef`]
    /// whose argument and result types must be the function's). Panics if the path is
    /// malformed or already taken (a programming error).
    ///
    /// [`QueryRef`]: keel_protocol::QueryRef
    pub fn query<A, R, F, Fut>(
        &mut self,
        name: impl FunctionName<kind::Query, Public, A, R>,
        f: F,
    ) -> &mut Self
    where
        F: Fn(QueryCtx, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, FunctionError>> + Send + 'static,
        A: DeserializeOwned + Send + 'static,
        R: Serialize,
    {
        self.insert(name.path(), Handler::Query(wrap(f)), Visibility::Public)
    }

    /// Registers a public mutation.
    pub fn mutation<A, R, F, Fut>(
        &mut self,
        name: impl FunctionName<kind::Mutation, Public, A, R>,
        f: F,
    ) -> &mut Self
    where
        F: Fn(MutationCtx, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, FunctionError>> + Send + 'static,
        A: DeserializeOwned + Send + 'static,
        R: Serialize,
    {
        self.insert(name.path(), Handler::Mutation(wrap(f)), Visibility::Public)
    }

    /// Registers a public action.
    pub fn action<A, R, F, Fut>(
        &mut self,
        name: impl FunctionName<kind::Action, Public, A, R>,
        f: F,
    ) -> &mut Self
    where
        F: Fn(ActionCtx, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, FunctionError>> + Send + 'static,
        A: DeserializeOwned + Send + 'static,
        R: Serialize,
    {
        self.insert(name.path(), Handler::Action(wrap(f)), Visibility::Public)
    }

    /// Registers an internal query (Convex's `internalQuery`): callable by the app's own code,
    /// unknown to clients.
    pub fn internal_query<A, R, F, Fut>(
        &mut self,
        name: impl FunctionName<kind::Query, Internal, A, R>,
        f: F,
    ) -> &mut Self
    where
        F: Fn(QueryCtx, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, FunctionError>> + Send + 'static,
        A: DeserializeOwned + Send + 'static,
        R: Serialize,
    {
        self.insert(name.path(), Handler::Query(wrap(f)), Visibility::Internal)
    }

    /// Registers an internal mutation (Convex's `internalMutation`).
    pub fn internal_mutation<A, R, F, Fut>(
        &mut self,
        name: impl FunctionName<kind::Mutation, Internal, A, R>,
        f: F,
    ) -> &mut Self
    where
        F: Fn(MutationCtx, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, FunctionError>> + Send + 'static,
        A: DeserializeOwned + Send + 'static,
        R: Serialize,
    {
        self.insert(
            name.path(),
            Handler::Mutation(wrap(f)),
            Visibility::Internal,
        )
    }

    /// Registers an internal action (Convex's `internalAction`).
    pub fn internal_action<A, R, F, Fut>(
        &mut self,
        name: impl FunctionName<kind::Action, Internal, A, R>,
        f: F,
    ) -> &mut Self
    where
        F: Fn(ActionCtx, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, FunctionError>> + Send + 'static,
        A: DeserializeOwned + Send + 'static,
        R: Serialize,
    {
        self.insert(name.path(), Handler::Action(wrap(f)), Visibility::Internal)
    }

    /// Declares the app's crons (Convex's `crons.ts`), replacing any declared before; the
    /// scheduler runs them (see [`Crons`]).
    pub fn crons(&mut self, crons: Crons) -> &mut Self {
        self.crons = crons;
        self
    }

    /// The app's crons.
    pub(crate) fn declared_crons(&self) -> &Crons {
        &self.crons
    }

    /// Whether a function (public or internal) is registered under `path` (any spelling Convex
    /// accepts).
    pub fn contains(&self, path: &str) -> bool {
        keel_protocol::normalize_udf_path(path).is_ok_and(|p| self.get(&p).is_some())
    }

    /// Declares the app's HTTP actions (Convex's `http.ts` router), replacing any declared
    /// before; they are served on the site origin.
    pub fn http_routes(&mut self, routes: HttpRoutes) -> &mut Self {
        self.http_routes = routes;
        self
    }

    /// The app's HTTP actions.
    pub fn routes(&self) -> &HttpRoutes {
        &self.http_routes
    }

    pub(crate) fn get(&self, path: &CanonicalPath) -> Option<&Function> {
        self.functions.get(path)
    }

    /// Every registered function with its path, in no order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&CanonicalPath, &Function)> {
        self.functions.iter()
    }

    /// The names of the public functions registered in `module`, sorted (what an error message
    /// may name: internal functions stay unknown to clients).
    pub(crate) fn public_functions_of_module(&self, module: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .functions
            .iter()
            .filter(|(path, function)| {
                path.module == module && function.visibility == Visibility::Public
            })
            .map(|(path, _)| path.function.clone())
            .collect();
        names.sort();
        names
    }
}
