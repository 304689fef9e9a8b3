//! The transaction of one top-level query or mutation, shared by the contexts of every function
//! that runs in it — the one the runner called and those it calls with `ctx.run_query` and
//! `ctx.run_mutation` — and taken back by the runner to subscribe or commit.
//!
//! A nested mutation runs in a savepoint of the transaction ([`keel_db::Savepoint`]): if it
//! fails, its writes are undone and its caller's stay, so the caller may handle the error and
//! go on (Convex's subtransactions). While it runs, the transaction is its own: its caller's
//! database handle refuses to be used until the call has returned, so a write of the caller
//! made meanwhile (say, in a `join!` with the call) cannot be undone with the callee's. Each
//! context knows its level (how many nested mutations it runs inside) and may use the
//! transaction only while the innermost open nested mutation is its own.
//!
//! A nested call dropped before it returns (its caller stopped waiting for it) is rolled back
//! the next time the transaction is used, as is one still running when the top-level function
//! returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use keel_db::{DbError, Savepoint, Transaction};
use keel_values::DocumentId;
use tokio::sync::Mutex;

use crate::error::FunctionError;
use crate::scheduler::SharedBudget;

/// The transaction a top-level query or mutation runs in.
pub(crate) struct SharedTransaction {
    slot: Arc<Mutex<Slot>>,
    /// What the functions running in it have scheduled (one budget for the transaction).
    budget: SharedBudget,
}

struct Slot {
    /// `None` once the runner has taken the transaction back.
    tx: Option<Transaction>,
    /// The nested mutations running, outermost first.
    nested: Vec<OpenNested>,
}

struct OpenNested {
    savepoint: Savepoint,
    /// Set when the call was dropped before it returned.
    abandoned: Arc<AtomicBool>,
}

impl Slot {
    /// Rolls back the nested mutations dropped before they returned (innermost first; a dropped
    /// call's own nested calls were dropped with it).
    fn settle(&mut self) {
        while self
            .nested
            .last()
            .is_some_and(|open| open.abandoned.load(Ordering::Acquire))
        {
            let Some(open) = self.nested.pop() else {
                break;
            };
            if let Some(tx) = &mut self.tx {
                tx.rollback_to(open.savepoint);
            }
        }
    }
}

impl SharedTransaction {
    pub(crate) fn new(tx: Transaction) -> SharedTransaction {
        SharedTransaction {
            slot: Arc::new(Mutex::new(Slot {
                tx: Some(tx),
                nested: Vec::new(),
            })),
            budget: SharedBudget::default(),
        }
    }

    /// The top-level function's access.
    pub(crate) fn access(&self) -> TxAccess {
        TxAccess {
            slot: self.slot.clone(),
            level: 0,
            budget: self.budget.clone(),
        }
    }

    /// Takes the transaction back once the top-level function has returned, rolling back any
    /// nested mutation still open. `None` if it was taken already.
    pub(crate) async fn finish(self) -> Option<Transaction> {
        let mut slot = self.slot.lock().await;
        let mut tx = slot.tx.take()?;
        while let Some(open) = slot.nested.pop() {
            tx.rollback_to(open.savepoint);
        }
        Some(tx)
    }
}

/// One function's use of the shared transaction (its context's database handle).
#[derive(Clone)]
pub(crate) struct TxAccess {
    slot: Arc<Mutex<Slot>>,
    /// How many nested mutations this function runs inside.
    level: usize,
    budget: SharedBudget,
}

impl TxAccess {
    /// Runs `f` on the transaction, if this function may use it now.
    pub(crate) async fn with<T>(
        &self,
        f: impl AsyncFnOnce(&mut Transaction) -> Result<T, DbError>,
    ) -> Result<T, FunctionError> {
        let mut slot = self.slot.lock().await;
        slot.settle();
        self.check_turn(&slot)?;
        let tx = slot.tx.as_mut().ok_or_else(finished)?;
        f(tx).await.map_err(FunctionError::from)
    }

    /// What the transaction's functions have scheduled so far (see `scheduler`).
    pub(crate) fn schedule_budget(&self) -> &SharedBudget {
        &self.budget
    }

    /// Runs `f` on the transaction, as [`TxAccess::with`], for work that fails with a
    /// function's error.
    pub(crate) async fn with_function<T>(
        &self,
        f: impl AsyncFnOnce(&mut Transaction) -> Result<T, FunctionError>,
    ) -> Result<T, FunctionError> {
        let mut slot = self.slot.lock().await;
        slot.settle();
        self.check_turn(&slot)?;
        let tx = slot.tx.as_mut().ok_or_else(finished)?;
        f(tx).await
    }

    /// The name of the (user) table `id` belongs to, if there is one.
    pub(crate) async fn table_name(&self, id: &DocumentId) -> Option<String> {
        self.slot.lock().await.tx.as_ref()?.table_name(id)
    }

    /// Starts a nested mutation in a savepoint; its context uses [`NestedMutation::access`].
    pub(crate) async fn begin_nested(&self) -> Result<NestedMutation, FunctionError> {
        let mut slot = self.slot.lock().await;
        slot.settle();
        self.check_turn(&slot)?;
        let savepoint = slot.tx.as_mut().ok_or_else(finished)?.savepoint();
        let abandoned = Arc::new(AtomicBool::new(false));
        slot.nested.push(OpenNested {
            savepoint,
            abandoned: abandoned.clone(),
        });
        Ok(NestedMutation {
            access: TxAccess {
                slot: self.slot.clone(),
                level: self.level + 1,
                budget: self.budget.clone(),
            },
            abandoned,
            ended: false,
        })
    }

    fn check_turn(&self, slot: &Slot) -> Result<(), FunctionError> {
        let open = slot.nested.len();
        if open > self.level {
            Err(FunctionError::uncaught(
                "the transaction is in use by a nested mutation (ctx.run_mutation) that has not \
                 returned yet; await it before using ctx.db() or calling another function",
            ))
        } else if open < self.level {
            Err(FunctionError::uncaught(
                "this nested mutation has already returned: its context can no longer be used",
            ))
        } else {
            Ok(())
        }
    }
}

fn finished() -> FunctionError {
    FunctionError::uncaught("the function's transaction has already finished")
}

/// A nested mutation's savepoint, ended by [`NestedMutation::end`] (or rolled back if dropped
/// before).
pub(crate) struct NestedMutation {
    access: TxAccess,
    abandoned: Arc<AtomicBool>,
    ended: bool,
}

impl NestedMutation {
    /// The nested mutation's access to the transaction.
    pub(crate) fn access(&self) -> TxAccess {
        self.access.clone()
    }

    /// Ends the nested mutation: its writes stay if it `succeeded`, else they are undone. Nested
    /// mutations it started and left running are rolled back.
    pub(crate) async fn end(mut self, succeeded: bool) {
        let mut slot = self.access.slot.lock().await;
        let ours = self.access.level - 1;
        while slot.nested.len() > ours {
            let Some(open) = slot.nested.pop() else {
                break;
            };
            let keep = succeeded && slot.nested.len() == ours;
            let Some(tx) = &mut slot.tx else {
                continue;
            };
            if keep {
                tx.release(open.savepoint);
            } else {
                tx.rollback_to(open.savepoint);
            }
        }
        // Only now: dropped while waiting for the lock, the call counts as abandoned.
        self.ended = true;
    }
}

impl Drop for NestedMutation {
    fn drop(&mut self) {
        if !self.ended {
            self.abandoned.store(true, Ordering::Release);
        }
    }
}
