//! The one writer thread and its group commit, and the pool of read connections.
//!
//! Writes go to one thread that commits everything queued behind it in one transaction: one
//! fsync covers many acknowledged writes, and each write still succeeds or fails alone (a
//! savepoint per job). A job keeps its result until the commit's outcome is known, so no caller
//! is acknowledged before its data is durable.

use std::fs::File;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::unavailable;
use crate::store::StoreError;

/// One write for the writer thread. It runs inside the group transaction (in its own
/// savepoint) and keeps its result until the commit's outcome is known, so no caller is
/// acknowledged before its data is durable.
pub(super) trait WriteJob: Send {
    /// Runs the job; returns `true` if it failed and its savepoint must be rolled back.
    fn run(&mut self, connection: &Connection) -> bool;
    /// Reports the job's result, or the commit's failure, to its caller.
    fn complete(self: Box<Self>, commit: Result<(), StoreError>);
}

/// What runs on the writer thread after a job's commit succeeded (see [`Job::on_commit`]).
pub(super) type OnCommit<T> = Box<dyn FnOnce(&T) + Send>;

pub(super) struct Job<T, F> {
    pub(super) work: Option<F>,
    pub(super) result: Option<Result<T, StoreError>>,
    pub(super) sender: oneshot::Sender<Result<T, StoreError>>,
    /// Run on the writer thread once the job's commit succeeded, before its caller is answered
    /// (whether or not the caller still waits): what must follow every commit of this kind.
    pub(super) on_commit: Option<OnCommit<T>>,
}

impl<T, F> WriteJob for Job<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, connection: &Connection) -> bool {
        let work = self.work.take().expect("a job runs once");
        let result = work(connection);
        let failed = result.is_err();
        self.result = Some(result);
        failed
    }

    fn complete(self: Box<Self>, commit: Result<(), StoreError>) {
        let Job { result, sender, on_commit, .. } = *self;
        if let (Ok(()), Some(Ok(value)), Some(on_commit)) = (&commit, &result, on_commit) {
            on_commit(value);
        }
        let result = match (commit, result) {
            (Err(error), _) => Err(error),
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StoreError::Unavailable("the write did not run".into())),
        };
        let _ = sender.send(result);
    }
}

/// Work that must run alone, outside any transaction (checkpoints).
pub(super) type ExclusiveWork = Box<dyn FnOnce(&Connection) + Send>;

pub(super) enum WriterJob {
    Transactional(Box<dyn WriteJob>),
    Exclusive(ExclusiveWork),
    /// Checkpoint, close the connection, release the lock, then signal.
    Shutdown(oneshot::Sender<()>),
}

/// The writer loop: take one job, then everything already queued up to the group limit, run
/// them in one transaction, commit once, then complete every job with the commit's outcome.
pub(super) fn run_writer(
    connection: Connection,
    mut receiver: mpsc::Receiver<WriterJob>,
    group_max: usize,
    lock: File,
    memo: Arc<super::memo::VersionMemo>,
) {
    let mut pending: Option<WriterJob> = None;
    let mut shutdown_signal = None;
    loop {
        let first = match pending.take() {
            Some(job) => job,
            None => match receiver.blocking_recv() {
                Some(job) => job,
                None => break,
            },
        };
        let mut group = match first {
            WriterJob::Exclusive(work) => {
                work(&connection);
                continue;
            }
            WriterJob::Shutdown(signal) => {
                shutdown_signal = Some(signal);
                break;
            }
            WriterJob::Transactional(work) => vec![work],
        };
        while group.len() < group_max {
            match receiver.try_recv() {
                Ok(WriterJob::Transactional(work)) => group.push(work),
                Ok(other) => {
                    pending = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        commit_group(&connection, group, &memo);
    }
    receiver.close();
    let _ = connection.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
    drop(connection);
    drop(lock);
    if let Some(signal) = shutdown_signal {
        let _ = signal.send(());
    }
}

pub(super) fn commit_group(connection: &Connection, group: Vec<Box<dyn WriteJob>>, memo: &super::memo::VersionMemo) {
    if let Err(error) = connection.execute_batch("BEGIN IMMEDIATE") {
        let failure = unavailable(&error);
        for job in group {
            job.complete(Err(failure.clone()));
        }
        return;
    }
    let mut ran = Vec::with_capacity(group.len());
    for mut job in group {
        let settled = connection.execute_batch("SAVEPOINT job").and_then(|()| {
            if job.run(connection) {
                connection.execute_batch("ROLLBACK TO job; RELEASE job")
            } else {
                connection.execute_batch("RELEASE job")
            }
        });
        if let Err(error) = settled {
            // Savepoint statements only fail if the connection itself is broken; fail the whole
            // group rather than commit a half-applied job.
            let failure = unavailable(&error);
            let _ = connection.execute_batch("ROLLBACK");
            for job in ran.into_iter().chain(std::iter::once(job)) {
                job.complete(Err(failure.clone()));
            }
            return;
        }
        ran.push(job);
    }
    let outcome = connection.execute_batch("COMMIT").map_err(|error| {
        let _ = connection.execute_batch("ROLLBACK");
        unavailable(&error)
    });
    if outcome.is_ok() {
        memo.committed();
    }
    for job in ran {
        job.complete(outcome.clone());
    }
}

/// A pool of read connections used from blocking threads.
pub(super) struct ReaderPool {
    pub(super) connections: Mutex<Vec<Connection>>,
    pub(super) permits: Arc<Semaphore>,
}

impl ReaderPool {
    pub(super) fn new(connections: Vec<Connection>) -> ReaderPool {
        let permits = Arc::new(Semaphore::new(connections.len()));
        ReaderPool { connections: Mutex::new(connections), permits }
    }
}
