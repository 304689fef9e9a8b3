//! The query journal: what a query's first run decided that its re-runs must repeat — today,
//! where its paginated page ended.
//!
//! A subscription re-runs a query whenever a commit changes what it read. A paginated query
//! that simply read `numItems` documents again would move its end: one post inserted before the
//! end pushes the last one onto the next page (shown twice), one deleted pulls the next page's
//! first one in (which would then show in neither). So, as in Convex, the first run records the
//! page's end cursor in its [`QueryJournal`], the sync protocol sends the journal with the
//! result (`QueryUpdated.journal`), the server re-runs the query with it (the page reads exactly
//! up to that end), and a client that reconnects sends it back with the query (`Add.journal`).
//! A function paginates at most once (Convex's rule), so one end cursor is the whole journal.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::FunctionError;

/// What a query run decided, for its next runs: see the [module docs](self).
///
/// Clients hold it as an opaque string ([`QueryJournal::to_wire`]) and send it back as they got
/// it. A string that is no journal of this query makes its `paginate` fail with
/// `InvalidCursor`, which the official clients answer by starting the list over.
///
/// ```
/// use keel_backend_core::QueryJournal;
/// assert_eq!(QueryJournal::new().to_wire(), None);
/// let journal = QueryJournal::from_wire(Some("0123".to_owned()));
/// assert_eq!(journal.to_wire().as_deref(), Some("0123"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct QueryJournal {
    /// Where the query's page ended (a cursor of its paginated query).
    end_cursor: Option<String>,
}

impl QueryJournal {
    /// The journal of a query that has not run yet.
    pub fn new() -> QueryJournal {
        QueryJournal::default()
    }

    /// The journal a client sent back (`null` is none).
    pub fn from_wire(journal: Option<String>) -> QueryJournal {
        QueryJournal {
            end_cursor: journal,
        }
    }

    /// The journal as clients carry it (`None`: `null`).
    pub fn to_wire(&self) -> Option<String> {
        self.end_cursor.clone()
    }
}

/// One execution's journals: the one it resumes from and the one it writes. Every context of
/// the execution's top-level function shares it; a function called with `ctx.run_query` or
/// `ctx.run_mutation` starts with a journal of its own (as in Convex), which is not kept.
#[derive(Clone, Default)]
pub(crate) struct JournalRecorder {
    inner: Arc<Mutex<Recorder>>,
}

#[derive(Default)]
struct Recorder {
    previous: QueryJournal,
    next: QueryJournal,
    paginated: bool,
}

impl JournalRecorder {
    /// A recorder for an execution that resumes `previous`.
    pub(crate) fn resuming(previous: QueryJournal) -> JournalRecorder {
        JournalRecorder {
            inner: Arc::new(Mutex::new(Recorder {
                previous,
                ..Recorder::default()
            })),
        }
    }

    /// Starts the function's paginated query: the end cursor it reads up to — the one it asks
    /// for, else the one its earlier run reached. A second paginated query fails.
    pub(crate) fn begin_page(
        &self,
        end_cursor: Option<String>,
    ) -> Result<Option<String>, FunctionError> {
        let mut recorder = self.inner.lock();
        if recorder.paginated {
            return Err(FunctionError::uncaught(
                "MultiplePaginatedDatabaseQueries: This query or mutation function ran multiple \
                 paginated queries. Convex only supports a single paginated query in each \
                 function.",
            ));
        }
        recorder.paginated = true;
        Ok(end_cursor.or_else(|| recorder.previous.end_cursor.clone()))
    }

    /// Records where the function's page ended.
    pub(crate) fn end_page(&self, continue_cursor: &str) {
        self.inner.lock().next.end_cursor = Some(continue_cursor.to_owned());
    }

    /// The journal the execution wrote.
    pub(crate) fn finish(&self) -> QueryJournal {
        self.inner.lock().next.clone()
    }
}
