//! Running Roundup methods: [`Caller`] runs each call (and each `system.multicall`
//! sub-call) as one user in its own transaction, the way the server does, and
//! [`call`] is the shorthand for one call. The app, the fuzz target and the tests
//! all run methods through here.
//!
//! A write transaction also writes the call's nosy mail into the outbox (so the mail
//! exists exactly when the change does) and commits; a failed create's id stays
//! used, as in Roundup. Under a request [`Deadline`] every operation is refused once
//! it has passed, and nothing commits after it: the call is then rolled back and
//! reported as overdue.

use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::items::Ctx;
use crate::log::field;
use crate::mail;
use crate::security::UserCtx;
use crate::store::{Id, Tx, WatchedTx};
use crate::tracker::Tracker;
use crate::xmlrpc::{Fault, MethodCall, Value};

/// Runs `name` (a Roundup method or a `system.*` one) with `params` as `user`, each
/// Roundup method in its own transaction, committed when it writes; answers what a
/// client would get.
pub fn call(
    tracker: &Tracker,
    user: &UserCtx,
    name: &str,
    params: &[Value],
) -> Result<Value, Fault> {
    let call = MethodCall {
        name: name.to_string(),
        params: params.to_vec(),
    };
    Caller::new(tracker, user).dispatch(&call)
}

/// One user's calls on one tracker (see the module docs).
#[derive(Debug)]
pub struct Caller<'a> {
    tracker: &'a Tracker,
    user: &'a UserCtx,
    deadline: Option<&'a Deadline>,
    commit: bool,
    overdue: bool,
    storage_errors: u64,
}

impl<'a> Caller<'a> {
    /// Calls by `user` on `tracker`, committed, without a deadline.
    pub fn new(tracker: &'a Tracker, user: &'a UserCtx) -> Caller<'a> {
        Caller {
            tracker,
            user,
            deadline: None,
            commit: true,
            overdue: false,
            storage_errors: 0,
        }
    }

    /// The same calls bound to a request's deadline: refused once it has passed, and
    /// committed only after [`Deadline::begin_commit`] allowed it.
    pub fn with_deadline(mut self, deadline: &'a Deadline) -> Caller<'a> {
        self.deadline = Some(deadline);
        self
    }

    /// The same calls, never committed: every transaction is rolled back and no mail
    /// is queued (the fuzz target's way: the database never changes).
    pub fn rolled_back(mut self) -> Caller<'a> {
        self.commit = false;
        self
    }

    /// The tracker.
    pub fn tracker(&self) -> &'a Tracker {
        self.tracker
    }

    /// The acting user.
    pub fn user(&self) -> &'a UserCtx {
        self.user
    }

    /// True once a call was refused or rolled back because of the deadline.
    pub fn overdue(&self) -> bool {
        self.overdue
    }

    /// How many storage failures (the database could not be read or written) the
    /// calls so far met.
    pub fn storage_errors(&self) -> u64 {
        self.storage_errors
    }

    /// Answers one call as a client sees it: a `system.*` method or a Roundup method
    /// (see [`super::dispatch`]).
    pub fn dispatch(&mut self, call: &MethodCall) -> Result<Value, Fault> {
        super::dispatch::dispatch(self, call)
    }

    /// Runs the Roundup method `name` (not a `system.*` one) in its own transaction.
    pub fn run(&mut self, name: &str, params: &[Value]) -> Result<Value> {
        let Some(method) = super::method(name) else {
            return Err(Error::Exception(format!(
                "method \"{name}\" is not supported"
            )));
        };
        self.transaction(method.writes, |ctx| (method.run)(ctx, params))
    }

    /// [`Caller::run`] with the error as its fault; a storage failure is logged
    /// with its detail (the client only learns that there was one).
    pub fn run_fault(&mut self, name: &str, params: &[Value]) -> Result<Value, Fault> {
        self.run(name, params).map_err(|e| {
            if let Error::Store(detail) | Error::ReadOnlyStore(detail) = &e {
                self.storage_errors += 1;
                tracing::error!(tracker = %self.tracker.name, method = %field(name), error = %field(detail), "storage failure");
            }
            e.to_fault()
        })
    }

    /// Runs `f` as this caller in one transaction, a write one when `writes`: the
    /// mail it queues goes into the outbox in the same transaction, a write commits
    /// when `f` succeeded (and the deadline allows it), ids burned by failed creates
    /// are recorded after a rollback, and the outbox is woken after a commit that
    /// queued mail.
    pub fn transaction<T>(
        &mut self,
        writes: bool,
        f: impl FnOnce(&mut Ctx<'_>) -> Result<T>,
    ) -> Result<T> {
        let tracker = self.tracker;
        if self.deadline.is_some_and(Deadline::passed) {
            self.overdue = true;
            return Err(overdue_error());
        }
        let raw = if writes {
            tracker.store.write()?
        } else {
            tracker.store.read()?
        };
        let mut tx: Box<dyn Tx + '_> = match self.deadline {
            Some(deadline) => Box::new(WatchedTx::new(raw, deadline)),
            None => raw,
        };
        let (result, outbox, burned) = {
            let mut ctx = Ctx::new(&mut *tx, tracker, self.user);
            ctx.python.deadline = self.deadline.map(Deadline::at);
            ctx.python.service = Some(super::pydb::serve);
            let r = f(&mut ctx);
            (r, ctx.outbox, ctx.burned_ids)
        };
        if !self.commit {
            return result;
        }
        // The mail is written to the outbox by this transaction (before the commit
        // decision, so the commit itself is the last step) and sent by the tracker's
        // delivery thread: no mail server delays the answer.
        let result = match result {
            Ok(v) if writes => mail::queue(&mut *tx, &outbox, &tracker.settings)
                .map(|()| v)
                .map_err(Error::from),
            other => other,
        };
        if let Some(deadline) = self.deadline {
            // Past the deadline, whatever the method made of its interrupted reads is
            // not trusted: a write is rolled back, a read answered as overdue.
            let overdue = if writes {
                result.is_ok() && !deadline.begin_commit()
            } else {
                deadline.passed()
            } || (result.is_err() && deadline.passed());
            if overdue {
                drop(tx);
                self.overdue = true;
                return Err(overdue_error());
            }
        }
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                drop(tx);
                if !burned.is_empty() {
                    self.consume_ids(&burned);
                }
                return Err(e);
            }
        };
        if writes {
            tx.commit()?;
            if !outbox.is_empty() {
                tracker.outbox.wake();
            }
        }
        Ok(value)
    }

    /// Records ids allocated by failed creates as used (after the rollback).
    fn consume_ids(&mut self, burned: &[(String, Id)]) {
        let result = (|| -> crate::store::Result<()> {
            let mut tx = self.tracker.store.write()?;
            for (cn, id) in burned {
                if let Some(class) = self.tracker.schema.class(cn) {
                    tx.consume_id(class, *id)?;
                }
            }
            tx.commit()
        })();
        if let Err(e) = result {
            self.storage_errors += 1;
            tracing::warn!(tracker = %self.tracker.name, error = %e, "could not record consumed ids");
        }
    }
}

/// The error of a (multicall sub-)call stopped by the deadline.
fn overdue_error() -> Error {
    Error::Internal("request deadline exceeded; the call was rolled back".into())
}
