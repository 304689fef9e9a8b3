//! Shared outcomes: callers of the same query at the same data get the same execution and the
//! same encoded text (written once, not per caller); a commit that changes what it read gives
//! the next caller a new execution with new text; a failed query has no text.

mod support;

use std::sync::Arc;

use keel_backend_core::{FunctionError, FunctionRegistry, Identity, QueryCtx, QueryJournal};
use serde_json::json;
use support::{NoArgs, args, core, path, texts};

#[tokio::test]
async fn identical_callers_share_one_execution_and_its_encodings() {
    let mut functions = FunctionRegistry::new();
    functions.query("notes:texts", texts).query(
        "notes:fails",
        |_: QueryCtx, _: NoArgs| async move {
            Err::<Vec<String>, _>(FunctionError::convex("nope", "data"))
        },
    );
    let core = core(functions).await;
    core.insert_note("one \"quoted\"").await;
    let b = &core.backend;
    let (texts_path, none) = (path("notes:texts"), args(json!({})));

    let first = b
        .run_query_shared(&texts_path, &none, &Identity::Anonymous, None)
        .await;
    let second = b
        .subscribe_query_shared(
            &texts_path,
            &none,
            &Identity::Anonymous,
            b.latest_ts(),
            &QueryJournal::new(),
        )
        .await;
    assert!(first.same_execution(&second));
    let (a, c) = (
        first.convex_json().expect("a result"),
        second.convex_json().expect("a result"),
    );
    assert!(Arc::ptr_eq(a, c), "the text is written once for both");
    assert!(
        Arc::ptr_eq(
            first.result().expect("a value"),
            second.result().expect("a value")
        ),
        "both hold the execution's value itself, not copies"
    );
    assert_eq!(first.log_lines(), first.outcome().log_lines);
    assert_eq!(&**a, r#"["one \"quoted\""]"#);
    assert_eq!(
        &**first.clean_json().expect("a result"),
        r#"["one \"quoted\""]"#
    );

    core.insert_note("two").await;
    let third = b
        .run_query_shared(&texts_path, &none, &Identity::Anonymous, None)
        .await;
    assert!(
        !third.same_execution(&first),
        "a commit changed what it read"
    );
    assert_eq!(
        &**third.convex_json().expect("a result"),
        r#"["one \"quoted\"","two"]"#
    );
    // The older outcome keeps what it had.
    assert_eq!(
        &**first.convex_json().expect("a result"),
        r#"["one \"quoted\""]"#
    );

    let failed = b
        .run_query_shared(&path("notes:fails"), &none, &Identity::Anonymous, None)
        .await;
    assert!(failed.convex_json().is_none() && failed.clean_json().is_none());
    assert!(failed.outcome().result.is_err() && failed.result().is_err());
}
