//! `ctx.auth()`: the caller's identity as a function sees it, and what the function looked at.
//!
//! A query's result may be shared with other callers only as far as it did not depend on who
//! called (see `query_cache`). So [`Auth`] notes what its function asked, an
//! [`AuthObservation`]: nothing; only whether a caller is signed in ([`Auth::is_signed_in`],
//! [`Auth::require_signed_in`]); or the identity itself ([`Auth::user_identity`], and anything
//! else that shows it, such as formatting the `Auth` with `{:?}`). The contexts of one execution
//! share one record: a query called with `ctx.run_query` in the caller's transaction notes into
//! the caller's, and a query run in a transaction of its own (from an action) folds in the
//! observation its result carries ([`crate::SharedOutcome::observed`]).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use keel_auth::UserIdentity;
use keel_values::obj;

use crate::error::FunctionError;
use crate::identity::Identity;

/// What an execution looked at of its caller's identity, from least to most: the broader
/// results may be shared, the narrower ones are kept for their caller alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuthObservation {
    /// Nothing: the result is the same for every caller, signed in or not.
    Nothing,
    /// Only whether the caller is signed in: the result is the same for every signed-in caller
    /// (and, apart, for every anonymous one).
    Presence,
    /// The identity itself: the result is the caller's own.
    Identity,
}

impl AuthObservation {
    fn from_u8(n: u8) -> AuthObservation {
        match n {
            0 => AuthObservation::Nothing,
            1 => AuthObservation::Presence,
            _ => AuthObservation::Identity,
        }
    }
}

/// The caller's identity, as `ctx.auth()`. Every question asked of it is noted (see the
/// [module docs](self)); clones note into the same record.
#[derive(Clone)]
pub struct Auth {
    identity: Identity,
    observed: Arc<AtomicU8>,
}

impl Auth {
    /// The identity of a new execution, nothing looked at yet.
    pub(crate) fn new(identity: Identity) -> Auth {
        Auth {
            identity,
            observed: Arc::new(AtomicU8::new(AuthObservation::Nothing as u8)),
        }
    }

    /// The identity, for the runner (to run a callee as the caller): not an observation, since
    /// the callee notes what it looks at.
    pub(crate) fn identity(&self) -> &Identity {
        &self.identity
    }

    /// What the execution (and the functions it called) looked at so far.
    pub(crate) fn observed(&self) -> AuthObservation {
        AuthObservation::from_u8(self.observed.load(Ordering::Acquire))
    }

    /// Notes that `observation` was made (a broader one noted earlier is narrowed, never the
    /// reverse).
    pub(crate) fn note(&self, observation: AuthObservation) {
        self.observed.fetch_max(observation as u8, Ordering::AcqRel);
    }

    /// The signed-in user, or `None` for an anonymous caller. The result of a query that calls
    /// this is kept for its caller alone.
    pub fn user_identity(&self) -> Option<&UserIdentity> {
        self.note(AuthObservation::Identity);
        match &self.identity {
            Identity::Anonymous => None,
            Identity::User(user) => Some(&user.identity),
        }
    }

    /// Whether the caller is signed in, without looking at who they are: the result of a query
    /// that asks only this is shared by every signed-in caller (and by every anonymous one).
    pub fn is_signed_in(&self) -> bool {
        self.note(AuthObservation::Presence);
        matches!(self.identity, Identity::User(_))
    }

    /// `Ok` if the caller is signed in, otherwise the application error (`ConvexError`)
    /// `"Not authenticated"` with data `{code: "UNAUTHENTICATED"}`; looks only at whether the
    /// caller is signed in, as [`Auth::is_signed_in`].
    ///
    /// ```
    /// use keel_backend_core::{FunctionError, QueryCtx};
    ///
    /// /// How many notes there are; signed-in callers only, all of them sharing one result.
    /// async fn count(ctx: QueryCtx, _: serde_json::Value) -> Result<usize, FunctionError> {
    ///     ctx.auth().require_signed_in()?;
    ///     Ok(ctx.db().query("notes").collect().await?.len())
    /// }
    /// ```
    pub fn require_signed_in(&self) -> Result<(), FunctionError> {
        if self.is_signed_in() {
            Ok(())
        } else {
            Err(FunctionError::convex(
                "Not authenticated",
                obj! { "code" => "UNAUTHENTICATED" },
            ))
        }
    }
}

/// Shows the identity, so it counts as looking at it.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.note(AuthObservation::Identity);
        f.debug_struct("Auth")
            .field("identity", &self.identity)
            .finish()
    }
}
