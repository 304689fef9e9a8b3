//! The function registry: queries, mutations and actions by path (`module:function`).
//!
//! Registering a function is one line; its arguments are any `Deserialize` type and its result
//! any `Serialize` type. Arguments are checked as Convex checks a function's argument validators
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
//! let mut functions = FunctionRegistry::new();
//! functions.query("greetings:greet", greet);
//! assert!(functions.contains("greetings:greet"));
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt;
use keel_protocol::CanonicalPath;
use keel_values::{Object, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::{ActionCtx, MutationCtx, QueryCtx};
use crate::error::FunctionError;

/// A boxed, sendable future.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Handler<C> = Arc<dyn Fn(C, Object) -> BoxFuture<Result<Value, FunctionError>> + Send + Sync>;

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

#[derive(Clone)]
pub(crate) enum Function {
    Query(Handler<QueryCtx>),
    Mutation(Handler<MutationCtx>),
    Action(Handler<ActionCtx>),
}

impl Function {
    pub(crate) fn kind(&self) -> FunctionKind {
        match self {
            Function::Query(_) => FunctionKind::Query,
            Function::Mutation(_) => FunctionKind::Mutation,
            Function::Action(_) => FunctionKind::Action,
        }
    }
}

/// All functions of an app, by canonical path.
#[derive(Clone, Default)]
pub struct FunctionRegistry {
    functions: HashMap<String, Function>,
}

fn wrap<C, A, R, F, Fut>(f: F) -> Handler<C>
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

    fn insert(&mut self, path: &str, function: Function) -> &mut Self {
        let canonical = keel_protocol::normalize_udf_path(path)
            .unwrap_or_else(|e| panic!("invalid function path {path:?}: {e}"));
        let previous = self.functions.insert(canonical.to_string(), function);
        assert!(
            previous.is_none(),
            "function {canonical} is registered twice"
        );
        self
    }

    /// Registers a query. Panics if the path is malformed or already taken (a programming error).
    pub fn query<A, R, F, Fut>(&mut self, path: &str, f: F) -> &mut Self
    where
        F: Fn(QueryCtx, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, FunctionError>> + Send + 'static,
        A: DeserializeOwned + Send + 'static,
        R: Serialize,
    {
        self.insert(path, Function::Query(wrap(f)))
    }

    /// Registers a mutation.
    pub fn mutation<A, R, F, Fut>(&mut self, path: &str, f: F) -> &mut Self
    where
        F: Fn(MutationCtx, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, FunctionError>> + Send + 'static,
        A: DeserializeOwned + Send + 'static,
        R: Serialize,
    {
        self.insert(path, Function::Mutation(wrap(f)))
    }

    /// Registers an action.
    pub fn action<A, R, F, Fut>(&mut self, path: &str, f: F) -> &mut Self
    where
        F: Fn(ActionCtx, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, FunctionError>> + Send + 'static,
        A: DeserializeOwned + Send + 'static,
        R: Serialize,
    {
        self.insert(path, Function::Action(wrap(f)))
    }

    /// Whether a function is registered under `path` (any spelling Convex accepts).
    pub fn contains(&self, path: &str) -> bool {
        keel_protocol::normalize_udf_path(path).is_ok_and(|p| self.get(&p).is_some())
    }

    pub(crate) fn get(&self, path: &CanonicalPath) -> Option<&Function> {
        self.functions.get(&path.to_string())
    }

    /// The names of the functions registered in `module`, sorted.
    pub(crate) fn functions_of_module(&self, module: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .functions
            .keys()
            .filter_map(|path| path.rsplit_once(':'))
            .filter(|(m, _)| *m == module)
            .map(|(_, function)| function.to_owned())
            .collect();
        names.sort();
        names
    }
}
