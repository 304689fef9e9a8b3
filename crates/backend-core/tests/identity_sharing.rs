//! Query results shared across identities as far as a query did not look at its caller: a
//! query that looked at nothing serves every caller from one execution, one that asked only
//! whether its caller is signed in serves every signed-in caller (and never an anonymous one),
//! and one that read the identity — itself or through a query it called — serves that identity
//! alone, even to callers who joined its execution while it ran. Executions are counted in the
//! backend's execution log.

mod support;

use std::sync::Arc;

use keel_backend_core::{
    AuthObservation, Backend, FunctionError, FunctionRegistry, Identity, QueryCtx, QueryJournal,
    SharedOutcome,
};
use keel_values::Value;
use serde_json::json;
use support::{NoArgs, args, core, note_texts, path};
use tokio::sync::Semaphore;

/// A signed-in caller with this subject (and a name, so that two of them differ in more than
/// their subject).
fn user(subject: &str) -> Identity {
    let fields = json!({ "subject": subject, "name": format!("User {subject}") });
    let fields = fields.as_object().expect("an object");
    Identity::acting_as(keel_auth::UserIdentity::acting_as(fields).expect("an identity"))
}

/// How many times `name` has run on this backend.
fn executions(backend: &Backend, name: &str) -> usize {
    let page = backend.execution_log().read(0, usize::MAX);
    page.entries.iter().filter(|e| e.path == name).count()
}

/// The query `name` (no arguments) as `identity`, at the latest commit.
async fn run(backend: &Backend, name: &str, identity: &Identity) -> SharedOutcome {
    backend
        .run_query_shared(&path(name), &args(json!({})), identity, None)
        .await
}

/// The value of an outcome that succeeded.
fn value(outcome: &SharedOutcome) -> Value {
    outcome.outcome().result.clone().expect("a value")
}

/// The `code` of an application error.
fn error_code(outcome: &SharedOutcome) -> String {
    let error = outcome.outcome().result.clone().expect_err("an error");
    let data = error.error_data().expect("an application error");
    data.as_object().expect("an object")["code"]
        .as_str()
        .expect("a code")
        .to_owned()
}

/// The caller's subject, or `null`.
async fn whoami(ctx: QueryCtx, _: NoArgs) -> Result<Value, FunctionError> {
    Ok(match ctx.auth().user_identity() {
        Some(user) => Value::from(user.subject.as_str()),
        None => Value::Null,
    })
}

/// The notes, for signed-in callers only.
async fn signed_in_notes(ctx: QueryCtx, _: NoArgs) -> Result<Vec<String>, FunctionError> {
    ctx.auth().require_signed_in()?;
    note_texts(ctx.db()).await
}

fn functions() -> FunctionRegistry {
    let mut functions = FunctionRegistry::new();
    functions
        .query("notes:texts", support::texts)
        .query("notes:signedIn", signed_in_notes)
        .query("auth:whoami", whoami)
        .query("auth:viaCall", |ctx: QueryCtx, _: NoArgs| async move {
            ctx.run_query::<Value, _>("auth:whoami", json!({})).await
        })
        .query("auth:debugged", |ctx: QueryCtx, _: NoArgs| async move {
            Ok(format!("{:?}", ctx.auth()).len() as f64)
        })
        .query(
            "auth:presenceViaCall",
            |ctx: QueryCtx, _: NoArgs| async move {
                ctx.run_query::<Vec<String>, _>("notes:signedIn", json!({}))
                    .await
            },
        );
    functions
}

#[tokio::test]
async fn a_presence_only_query_runs_once_for_every_signed_in_caller_and_never_serves_anonymous() {
    let core = core(functions()).await;
    core.insert_note("first").await;
    let b = &core.backend;
    let (ann, bob) = (user("ann"), user("bob"));

    let for_ann = run(b, "notes:signedIn", &ann).await;
    let for_bob = run(b, "notes:signedIn", &bob).await;
    assert_eq!(value(&for_ann), Value::from(vec![Value::from("first")]));
    assert!(for_bob.same_execution(&for_ann), "one result for both");
    assert_eq!(for_ann.observed(), AuthObservation::Presence);
    assert_eq!(executions(b, "notes:signedIn"), 1);

    let anonymous = run(b, "notes:signedIn", &Identity::Anonymous).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
    assert_eq!(
        executions(b, "notes:signedIn"),
        2,
        "the anonymous caller ran its own"
    );
    // And the anonymous result is shared by anonymous callers only.
    let again = run(b, "notes:signedIn", &Identity::Anonymous).await;
    assert!(again.same_execution(&anonymous));
    let for_cyd = run(b, "notes:signedIn", &user("cyd")).await;
    assert!(for_cyd.same_execution(&for_ann));
    assert_eq!(executions(b, "notes:signedIn"), 2);

    // A commit invalidates the shared result for all of them: one new execution, which every
    // signed-in caller gets.
    core.insert_note("second").await;
    let after_bob = run(b, "notes:signedIn", &bob).await;
    let after_ann = run(b, "notes:signedIn", &ann).await;
    assert!(after_ann.same_execution(&after_bob));
    assert_eq!(
        value(&after_ann),
        Value::from(vec![Value::from("first"), Value::from("second")])
    );
    assert_eq!(executions(b, "notes:signedIn"), 3);
}

#[tokio::test]
async fn a_query_that_reads_the_identity_serves_that_identity_alone() {
    let core = core(functions()).await;
    let b = &core.backend;
    let (ann, bob) = (user("ann"), user("bob"));
    for name in ["auth:whoami", "auth:viaCall", "auth:debugged"] {
        let for_ann = run(b, name, &ann).await;
        let for_bob = run(b, name, &bob).await;
        let anonymous = run(b, name, &Identity::Anonymous).await;
        assert!(!for_bob.same_execution(&for_ann), "{name}");
        assert!(!anonymous.same_execution(&for_ann), "{name}");
        assert_eq!(for_ann.observed(), AuthObservation::Identity, "{name}");
        assert_eq!(executions(b, name), 3, "{name}");
        // Each caller's own result is reused for that caller.
        assert!(run(b, name, &ann).await.same_execution(&for_ann), "{name}");
        assert_eq!(executions(b, name), 3, "{name}");
    }
    assert_eq!(
        value(&run(b, "auth:whoami", &ann).await),
        Value::from("ann")
    );
    assert_eq!(
        value(&run(b, "auth:whoami", &bob).await),
        Value::from("bob")
    );
    assert_eq!(
        value(&run(b, "auth:viaCall", &bob).await),
        Value::from("bob")
    );
    assert_eq!(
        value(&run(b, "auth:viaCall", &Identity::Anonymous).await),
        Value::Null
    );
    // The same user with another token (the same claims) is the same identity.
    let ann_again = user("ann");
    assert!(
        run(b, "auth:whoami", &ann_again)
            .await
            .same_execution(&run(b, "auth:whoami", &ann).await)
    );
}

#[tokio::test]
async fn a_query_that_looks_at_nothing_is_shared_by_anonymous_and_signed_in_callers() {
    let core = core(functions()).await;
    core.insert_note("shared").await;
    let b = &core.backend;
    let anonymous = run(b, "notes:texts", &Identity::Anonymous).await;
    let for_ann = run(b, "notes:texts", &user("ann")).await;
    let for_bob = run(b, "notes:texts", &user("bob")).await;
    assert!(for_ann.same_execution(&anonymous) && for_bob.same_execution(&anonymous));
    assert_eq!(anonymous.observed(), AuthObservation::Nothing);
    assert_eq!(executions(b, "notes:texts"), 1);

    // A caller of a presence-only query observes presence too.
    let via = run(b, "auth:presenceViaCall", &user("ann")).await;
    assert_eq!(via.observed(), AuthObservation::Presence);
    let via_anonymous = run(b, "auth:presenceViaCall", &Identity::Anonymous).await;
    assert_eq!(error_code(&via_anonymous), "UNAUTHENTICATED");
    assert!(
        run(b, "auth:presenceViaCall", &user("bob"))
            .await
            .same_execution(&via)
    );
}

/// A query that waits for the test's go-ahead before it reads the caller (so that other
/// callers arrive while it runs).
fn gated(gate: Arc<Semaphore>, presence_only: bool) -> FunctionRegistry {
    let mut functions = FunctionRegistry::new();
    functions.query("auth:gated", move |ctx: QueryCtx, _: NoArgs| {
        let gate = gate.clone();
        async move {
            drop(gate.acquire().await.expect("the gate stays open"));
            if presence_only {
                ctx.auth().require_signed_in()?;
                return Ok(Value::from("signed in"));
            }
            Ok(match ctx.auth().user_identity() {
                Some(user) => Value::from(user.subject.as_str()),
                None => Value::Null,
            })
        }
    });
    functions
}

/// Runs `auth:gated` for every caller at once (the first caller's execution is in flight when
/// the others look it up), then opens the gate.
async fn all_at_once(backend: &Backend, gate: &Semaphore, callers: &[Identity]) -> Vec<Value> {
    let ts = backend.latest_ts();
    let journal = QueryJournal::new();
    let (gated, none) = (path("auth:gated"), args(json!({})));
    let calls = callers
        .iter()
        .map(|identity| backend.subscribe_query_shared(&gated, &none, identity, ts, &journal));
    let results = futures::future::join_all(calls);
    let open = async {
        tokio::task::yield_now().await;
        gate.add_permits(callers.len() * 4);
    };
    let (results, ()) = tokio::join!(results, open);
    results
        .iter()
        .map(|outcome| match &outcome.outcome().result {
            Ok(value) => value.clone(),
            Err(error) => error.error_data().cloned().expect("an application error"),
        })
        .collect()
}

#[tokio::test]
async fn callers_who_join_an_execution_in_flight_get_it_only_if_it_serves_them() {
    let gate = Arc::new(Semaphore::new(0));
    let core = core(gated(gate.clone(), false)).await;
    let b = &core.backend;
    let callers = [user("ann"), user("bob"), Identity::Anonymous, user("ann")];
    // The first round: nothing is known of the query yet, so the others join ann's execution;
    // it read ann's identity, so only the second ann keeps its result.
    let first = all_at_once(b, &gate, &callers).await;
    assert_eq!(
        first,
        [
            Value::from("ann"),
            Value::from("bob"),
            Value::Null,
            Value::from("ann")
        ]
    );
    assert_eq!(executions(b, "auth:gated"), 3);
}

#[tokio::test]
async fn anonymous_callers_who_join_a_presence_only_execution_run_their_own() {
    let gate = Arc::new(Semaphore::new(0));
    let core = core(gated(gate.clone(), true)).await;
    let b = &core.backend;
    let callers = [
        user("ann"),
        Identity::Anonymous,
        user("bob"),
        Identity::Anonymous,
    ];
    let results = all_at_once(b, &gate, &callers).await;
    let refused = keel_values::obj! { "code" => "UNAUTHENTICATED" };
    assert_eq!(
        results,
        [
            Value::from("signed in"),
            refused.clone(),
            Value::from("signed in"),
            refused
        ]
    );
    assert_eq!(executions(b, "auth:gated"), 2, "one for each side");
}
