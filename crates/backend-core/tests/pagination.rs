//! Paginated queries in the core: `paginationOpts` decoded as Convex's validator does, the
//! journal that pins a subscribed page's end across re-runs (kept only up to a size by
//! `paginate_window`), and one paginated query per function.

mod support;

use keel_backend_core::{
    FunctionError, FunctionRegistry, Identity, MutationCtx, QueryCtx, QueryJournal, QueryOutcome,
};
use keel_db::{Order, PaginationOptions, PaginationResult};
use keel_values::Value;
use serde_json::json;
use support::{Core, args, core, path};

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageArgs {
    pagination_opts: PaginationOptions,
}

/// Notes, newest first.
async fn page(ctx: QueryCtx, args: PageArgs) -> Result<PaginationResult<Value>, FunctionError> {
    let page = ctx
        .db()
        .query("notes")
        .order(Order::Desc)
        .paginate(args.pagination_opts)
        .await?;
    Ok(page.map(|note| note.fields["text"].clone()))
}

/// Notes, newest first, as a window: the subscribed page keeps its end up to twice its size.
async fn window(ctx: QueryCtx, args: PageArgs) -> Result<PaginationResult<Value>, FunctionError> {
    let max = 2 * args.pagination_opts.num_items;
    let page = ctx
        .db()
        .query("notes")
        .order(Order::Desc)
        .paginate_window(args.pagination_opts, max)
        .await?;
    Ok(page.map(|note| note.fields["text"].clone()))
}

/// Paginates twice, which Convex refuses.
async fn twice(ctx: QueryCtx, args: PageArgs) -> Result<f64, FunctionError> {
    let first = ctx
        .db()
        .query("notes")
        .paginate(args.pagination_opts.clone())
        .await?;
    let second = ctx
        .db()
        .query("notes")
        .paginate(args.pagination_opts)
        .await?;
    Ok((first.page.len() + second.page.len()) as f64)
}

/// A query that calls the paginated one: the callee's journal is its own and is not kept.
async fn nested(ctx: QueryCtx, args: PageArgs) -> Result<Value, FunctionError> {
    let first: Value = ctx
        .run_query("notes:page", json!({ "paginationOpts": { "numItems": args.pagination_opts.num_items, "cursor": null } }))
        .await?;
    let own = ctx
        .db()
        .query("notes")
        .paginate(args.pagination_opts)
        .await?;
    Ok(Value::Array(vec![first, (own.page.len() as f64).into()]))
}

/// Paginates in a mutation and then writes.
async fn page_then_write(ctx: MutationCtx, args: PageArgs) -> Result<f64, FunctionError> {
    let page = ctx
        .db()
        .query("notes")
        .paginate(args.pagination_opts)
        .await?;
    ctx.db()
        .insert("notes", support::text("from a mutation"))
        .await?;
    Ok(page.page.len() as f64)
}

fn functions() -> FunctionRegistry {
    let mut functions = FunctionRegistry::new();
    functions
        .query("notes:page", page)
        .query("notes:window", window)
        .query("notes:twice", twice)
        .query("notes:nested", nested)
        .mutation("notes:pageThenWrite", page_then_write);
    functions
}

/// Subscribes `notes:page` with `opts`, resuming `journal`.
async fn subscribe(core: &Core, opts: serde_json::Value, journal: &QueryJournal) -> QueryOutcome {
    core.backend
        .subscribe_query_journaled(
            &path("notes:page"),
            &args(json!({ "paginationOpts": opts })),
            &Identity::Anonymous,
            core.backend.latest_ts(),
            journal,
        )
        .await
}

fn texts(outcome: &QueryOutcome) -> Vec<String> {
    let value = outcome.result.clone().expect("a page");
    let page: PaginationResult<String> =
        keel_values::from_value(&value).expect("a PaginationResult");
    page.page
}

#[tokio::test]
async fn a_subscribed_page_keeps_its_end_through_its_journal() {
    let core = core(functions()).await;
    for n in 1..=5 {
        core.insert_note(&format!("n{n}")).await;
    }
    let opts = json!({ "numItems": 2, "cursor": null, "id": 1 });
    let first = subscribe(&core, opts.clone(), &QueryJournal::new()).await;
    assert_eq!(texts(&first), ["n5", "n4"]);
    let value = first.result.clone().unwrap();
    let object = value.as_object().unwrap();
    let continue_cursor = object["continueCursor"].as_str().unwrap().to_owned();
    assert_eq!(object["isDone"], Value::Boolean(false));
    assert_eq!(
        first.journal.to_wire().as_deref(),
        Some(continue_cursor.as_str()),
        "the journal holds where the page ended"
    );
    // A note inserted before the end: the subscription fires and the re-run, resuming the
    // journal, reads up to the same end (three notes now) instead of two.
    core.insert_note("n6").await;
    assert!(first.subscription.is_invalidated());
    let again = subscribe(&core, opts.clone(), &first.journal).await;
    assert_eq!(texts(&again), ["n6", "n5", "n4"]);
    assert_eq!(
        again.journal, first.journal,
        "the same end, the same journal"
    );
    // Without the journal (a fresh subscription) the page has two notes again.
    let fresh = subscribe(&core, opts.clone(), &QueryJournal::new()).await;
    assert_eq!(texts(&fresh), ["n6", "n5"]);
    // The next page, from the first page's continue cursor, starts after n4: nothing twice.
    let next = subscribe(
        &core,
        json!({ "numItems": 2, "cursor": continue_cursor }),
        &QueryJournal::new(),
    )
    .await;
    assert_eq!(texts(&next), ["n3", "n2"]);
    // An explicit endCursor wins over the journal (how a client splits a page).
    let split = subscribe(
        &core,
        json!({ "numItems": 2, "cursor": null, "endCursor": next.journal.to_wire() }),
        &first.journal,
    )
    .await;
    assert_eq!(texts(&split), ["n6", "n5", "n4", "n3", "n2"]);
    // A journal that is not one of this query fails the page as an invalid cursor, which the
    // official clients answer by starting the list over.
    let garbage = subscribe(
        &core,
        opts,
        &QueryJournal::from_wire(Some("nonsense".into())),
    )
    .await;
    let error = garbage.result.expect_err("an invalid journal");
    assert!(
        error.client_message().starts_with("InvalidCursor"),
        "{error}"
    );
    assert_eq!(
        error.error_data().map(keel_values::to_json),
        Some(json!({ "paginationError": "InvalidCursor" }))
    );
    assert_eq!(garbage.journal, QueryJournal::new());
}

#[tokio::test]
async fn a_function_paginates_once_and_a_callee_has_its_own_journal() {
    let core = core(functions()).await;
    for n in 1..=3 {
        core.insert_note(&format!("n{n}")).await;
    }
    let opts = json!({ "paginationOpts": { "numItems": 1, "cursor": null } });
    let error = core
        .query("notes:twice", opts.clone())
        .await
        .expect_err("refused");
    assert!(
        error.client_message().contains(
            "MultiplePaginatedDatabaseQueries: This query or mutation function ran multiple"
        ),
        "{error}"
    );
    // The callee's paginated query does not count against its caller's.
    let value = core
        .query("notes:nested", opts.clone())
        .await
        .expect("nested pages");
    let Value::Array(parts) = value else {
        panic!("an array")
    };
    assert_eq!(parts[1], Value::Float64(1.0));
    // A mutation paginates too (and writes after).
    assert_eq!(
        core.mutation("notes:pageThenWrite", opts).await.unwrap(),
        Value::Float64(1.0)
    );
    // Bad options: Convex's codes, as the client sees them.
    for (opts, code) in [
        (
            json!({ "numItems": 0, "cursor": null }),
            "NoDocumentsForPagination",
        ),
        (
            json!({ "numItems": 2, "cursor": null, "maximumRowsRead": 0 }),
            "InvalidPaginationLimit",
        ),
        (json!({ "numItems": 2, "cursor": "zz" }), "InvalidCursor"),
    ] {
        let error = core
            .query("notes:page", json!({ "paginationOpts": opts }))
            .await
            .expect_err(code);
        assert!(error.client_message().contains(code), "{error}");
    }
    let error = core
        .query(
            "notes:page",
            json!({ "paginationOpts": { "numItems": -1, "cursor": null } }),
        )
        .await
        .expect_err("negative");
    assert!(
        matches!(error, FunctionError::InvalidArguments(_)),
        "{error:?}"
    );
    assert!(
        error
            .client_message()
            .contains("Path: .paginationOpts.numItems"),
        "{error}"
    );
}

#[tokio::test]
async fn a_window_keeps_its_end_up_to_its_bound_then_starts_over_from_the_newest() {
    let core = core(functions()).await;
    for n in 1..=5 {
        core.insert_note(&format!("n{n}")).await;
    }
    let run = async |journal: &QueryJournal| {
        core.backend
            .subscribe_query_journaled(
                &path("notes:window"),
                &args(json!({ "paginationOpts": { "numItems": 2, "cursor": null } })),
                &Identity::Anonymous,
                core.backend.latest_ts(),
                journal,
            )
            .await
    };
    let mut outcome = run(&QueryJournal::new()).await;
    assert_eq!(texts(&outcome), ["n5", "n4"]);
    // New notes land on top and the page keeps what it showed, up to four (twice two) …
    for (n, expected) in [
        (6, vec!["n6", "n5", "n4"]),
        (7, vec!["n7", "n6", "n5", "n4"]),
        // … then it starts over with the newest two, and keeps that end from there.
        (8, vec!["n8", "n7"]),
        (9, vec!["n9", "n8", "n7"]),
    ] {
        core.insert_note(&format!("n{n}")).await;
        assert!(
            outcome.subscription.is_invalidated(),
            "note {n} changes the page"
        );
        outcome = run(&outcome.journal).await;
        assert_eq!(texts(&outcome), expected, "after n{n}");
    }
    // The page's continue cursor goes on with the plain pages, from where the window ends.
    let value = outcome.result.clone().unwrap();
    let cursor = value.as_object().unwrap()["continueCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let next = subscribe(
        &core,
        json!({ "numItems": 10, "cursor": cursor }),
        &QueryJournal::new(),
    )
    .await;
    assert_eq!(texts(&next), ["n6", "n5", "n4", "n3", "n2", "n1"]);
}
