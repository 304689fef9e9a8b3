// Shared by the compile-fail programs: the callers' bounds and an app's references.
use keel_protocol::{FunctionName, Internal, InternalMutationRef, MutationRef, Public, QueryRef, kind};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct CreateArgs {
    pub title: String,
}

#[derive(Serialize, Deserialize)]
pub struct IdArgs {
    pub id: String,
}

pub const CREATE: MutationRef<CreateArgs, String> = MutationRef::new("posts:create");
pub const GET: QueryRef<IdArgs, Option<String>> = QueryRef::new("posts:get");
pub const PUBLISH: InternalMutationRef<CreateArgs, String> =
    InternalMutationRef::new("posts:publish");

/// A client's `mutation` (`HttpClient::mutation`, `LiveClient::mutation`).
pub fn client_mutation<R, A: Serialize>(
    function: impl FunctionName<kind::Mutation, Public, A, R>,
    _args: A,
) -> Option<R> {
    let _ = function.path();
    None
}

/// A client's `query` (`HttpClient::query`, `RouteContext::query`, `QueryClient::query` …).
pub fn client_query<R, A: Serialize>(
    function: impl FunctionName<kind::Query, Public, A, R>,
    _args: A,
) -> Option<R> {
    let _ = function.path();
    None
}

/// `FunctionRegistry::internal_mutation`: the function's argument and result types are the
/// reference's.
pub fn register_internal_mutation<A, R, F>(
    name: impl FunctionName<kind::Mutation, Internal, A, R>,
    _function: F,
) where
    F: Fn(A) -> R,
{
    let _ = name.path();
}
