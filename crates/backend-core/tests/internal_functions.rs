//! Internal functions: the app's own code calls them; to a client they do not exist — the same
//! error as a path with no function, whatever the kind asked for, and no message names them.

mod support;

use keel_backend_core::{
    ActionCtx, FunctionError, FunctionKind, FunctionRegistry, Identity, QueryCtx, SessionRequest,
};
use serde_json::json;
use support::{Core, NoArgs, Note, add, args, core, note_texts, path, texts};

/// Adds a note through the internal mutation, then reads the notes through the internal query,
/// through the internal action `notes:relay`.
async fn add_and_list(ctx: ActionCtx, note: Note) -> Result<Vec<String>, FunctionError> {
    ctx.run_action("notes:relay", json!({ "text": note.text }))
        .await
}

async fn relay(ctx: ActionCtx, note: Note) -> Result<Vec<String>, FunctionError> {
    let _: String = ctx
        .run_mutation("notes:add", json!({ "text": note.text }))
        .await?;
    ctx.run_query("notes:texts", json!({})).await
}

fn functions() -> FunctionRegistry {
    let mut functions = FunctionRegistry::new();
    functions
        .query("notes:count", |ctx: QueryCtx, _: NoArgs| async move {
            Ok(note_texts(ctx.db()).await?.len() as f64)
        })
        .internal_query("notes:texts", texts)
        .internal_mutation("notes:add", add)
        .internal_action("notes:relay", relay)
        .action("notes:addAndList", add_and_list)
        .internal_query("hidden:only", texts);
    functions
}

/// The message a client gets for `name` when no function is there.
async fn missing_message(core: &Core, name: &str) -> String {
    core.query(name, json!({}))
        .await
        .expect_err("no function there")
        .client_message()
}

#[tokio::test]
async fn a_client_calling_an_internal_function_gets_the_error_of_a_missing_one() {
    let core = core(functions()).await;
    let missing = missing_message(&core, "notes:nope").await;
    assert_eq!(
        missing,
        "Could not find public function for 'notes:nope'. Module `notes` registers: addAndList, \
         count.",
        "the listing names public functions only"
    );
    let like_missing = |name: &str| missing.replace("notes:nope", name);

    // Whatever kind the client asks for — the right one or another — it is "not found".
    for (name, kind) in [
        ("notes:texts", FunctionKind::Query),
        ("notes:add", FunctionKind::Mutation),
        ("notes:relay", FunctionKind::Action),
    ] {
        for asked in [
            FunctionKind::Query,
            FunctionKind::Mutation,
            FunctionKind::Action,
        ] {
            let json = json!({ "text": "from a client" });
            let error = match asked {
                FunctionKind::Query => core.query(name, json).await,
                FunctionKind::Mutation => core.mutation(name, json).await,
                FunctionKind::Action => core.action(name, json).await,
            }
            .expect_err("a client does not reach an internal function");
            assert!(
                matches!(error, FunctionError::NotFound { .. }),
                "{name} ({kind:?}) asked as {asked:?}: {error:?}"
            );
            assert_eq!(error.client_message(), like_missing(name));
            assert_eq!(error.error_data(), None);
        }
        assert_eq!(core.backend.function_kind(&path(name)), None);
    }

    // The other entry points of a transport refuse them the same way.
    let anonymous = Identity::Anonymous;
    let (result, _) = core
        .backend
        .subscribe_query(
            &path("notes:texts"),
            &args(json!({})),
            &anonymous,
            core.backend.latest_ts(),
        )
        .await;
    assert_eq!(
        result.expect_err("refused").client_message(),
        like_missing("notes:texts")
    );
    let request = SessionRequest {
        session_id: "b3b1a0e4-0000-4000-8000-000000000001".to_owned(),
        request_id: 0,
    };
    let error = core
        .backend
        .run_session_mutation(
            &path("notes:add"),
            args(json!({ "text": "x" })),
            &anonymous,
            &request,
        )
        .await
        .expect_err("refused");
    assert_eq!(error.client_message(), like_missing("notes:add"));

    // A module of internal functions only is, to a client, a module with none.
    assert_eq!(
        missing_message(&core, "hidden:only").await,
        missing_message(&core, "hidden:nope")
            .await
            .replace("hidden:nope", "hidden:only")
    );
    assert!(
        missing_message(&core, "hidden:only")
            .await
            .contains("No function is registered in module `hidden`")
    );
    assert!(core.notes().await.is_empty(), "nothing ran");
    assert_eq!(
        core.backend.function_kind(&path("notes:count")),
        Some(FunctionKind::Query)
    );
}

#[tokio::test]
async fn the_app_s_own_functions_call_internal_ones() {
    let core = core(functions()).await;
    // A public action runs an internal action, which runs an internal mutation and query.
    let listed = core
        .action("notes:addAndList", json!({ "text": "first" }))
        .await
        .expect("the action ran");
    assert_eq!(listed, keel_values::Value::Array(vec!["first".into()]));
    assert_eq!(core.notes().await, ["first"]);

    // The internal query ran (and its execution was shared) for the action; a client asking for
    // it right after still gets "not found", not that result.
    let error = core
        .query("notes:texts", json!({}))
        .await
        .expect_err("refused");
    assert!(matches!(error, FunctionError::NotFound { .. }), "{error:?}");
}

#[test]
#[should_panic(expected = "function notes:add is registered twice")]
fn a_path_is_public_or_internal_not_both() {
    let mut functions = FunctionRegistry::new();
    functions
        .mutation("notes:add", add)
        .internal_mutation("notes:add", add);
}
