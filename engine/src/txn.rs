//! Transactions: the writes a caller makes between [`Transaction::begin`] and
//! [`Transaction::commit`] (a server's EXEC) land on disk all or nothing. Each write is applied
//! at once, as any other (the caller's later reads see it), and its record carries
//! `format::FLAG_TXN`; the commit appends one commit record naming the first. Recovery
//! applies a transaction's records only with its commit record, so a crash in the middle
//! drops the whole transaction, however many segments it spans (see `docs/FORMAT.md`).
//!
//! What a transaction's uncommitted writes make dead must outlive a crash before the commit:
//! FLUSHALL's old segments and compaction's inputs are retired only once the commit is
//! durable, and compaction copies no record of a transaction still open (its copies would
//! count without the commit record).

use parking_lot::MutexGuard;

use crate::error::Result;
use crate::shared::Shared;
use crate::write::WriteToken;

/// An open transaction (see the module doc). Only the writes of the thread that opened it
/// join it; one is open at a time (a second [`crate::Engine::transaction`] waits).
/// Dropping it commits it, as [`Transaction::commit`] does, ignoring the result.
#[must_use = "a transaction is committed by `commit` (or when dropped)"]
pub struct Transaction<'a> {
    shared: &'a Shared,
    /// Held while open: transactions never overlap (recovery relies on it).
    _one: MutexGuard<'a, ()>,
    open: bool,
}

impl<'a> Transaction<'a> {
    pub(crate) fn begin(shared: &'a Shared) -> Transaction<'a> {
        // Waiting for the lock would wait for ever: the caller holds it.
        assert!(
            !shared.log.txn_here(),
            "a transaction is already open on this thread"
        );
        let one = shared.txn_lock.lock();
        shared.log.txn_begin();
        Transaction {
            shared,
            _one: one,
            open: true,
        }
    }

    /// Appends the commit record, if the transaction wrote anything, and retires what waited
    /// for it. The token names the commit record: once it is durable, so is the whole
    /// transaction.
    ///
    /// # Errors
    /// The error that kept the commit record from the log. The engine is poisoned then: the
    /// index holds writes that recovery would drop, so no later write may be acknowledged.
    pub fn commit(mut self) -> Result<Option<WriteToken>> {
        self.finish()
    }

    fn finish(&mut self) -> Result<Option<WriteToken>> {
        self.open = false;
        let sh = self.shared;
        let (appended, retire) = sh.log.txn_commit(&sh.log_env());
        let appended = appended.map_err(|e| {
            let e = sh.note_write_error(e);
            if !sh.is_poisoned() {
                sh.poison(format!(
                    "a transaction's commit record was not written: {e}"
                ));
            }
            e
        })?;
        if appended.is_some_and(|a| a.grew) {
            sh.on_log_grew();
        }
        let token = appended.map(|a| WriteToken(a.seq));
        if !retire.is_empty() {
            crate::wait::wait_durable(sh, sh.log.last_seq())?;
            sh.registry.retire(&retire);
            crate::segment::sync_dir(&sh.dir)?;
        }
        Ok(token)
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.finish();
        }
    }
}
