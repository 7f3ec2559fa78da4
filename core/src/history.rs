//! The editor: one entry point for commands, with transactions and undo/redo.
//!
//! History stores document snapshots (like Graphite's `StartTransaction`): an undo step is
//! the document before a command or a transaction, so undo is exact whatever the command.

use std::collections::VecDeque;

use crate::command::{Command, EditError, Outcome};
use crate::document::Document;

/// Default number of undo steps kept (oldest dropped first).
pub const DEFAULT_HISTORY_CAP: usize = 100;

/// A document with its undo history.
#[derive(Clone, Debug)]
pub struct Editor {
    doc: Document,
    undo: VecDeque<Document>,
    redo: Vec<Document>,
    transaction: Option<Document>,
    cap: usize,
}

impl Editor {
    /// Starts editing `doc` with an empty history.
    pub fn new(doc: Document) -> Self {
        Self {
            doc,
            undo: VecDeque::new(),
            redo: Vec::new(),
            transaction: None,
            cap: DEFAULT_HISTORY_CAP,
        }
    }

    /// Keeps at most `cap` undo steps (at least 1).
    pub fn with_history_cap(mut self, cap: usize) -> Self {
        self.cap = cap.max(1);
        self.trim();
        self
    }

    /// The current document.
    pub fn document(&self) -> &Document {
        &self.doc
    }

    /// Replaces the current document without recording an undo step (the optimiser's snapshots).
    /// Existing undo steps stay valid: each restores a whole earlier document. An open
    /// transaction is cancelled.
    pub fn replace_untracked(&mut self, doc: Document) {
        self.transaction = None;
        self.doc = doc;
    }

    /// Gives up the history and returns the document.
    pub fn into_document(self) -> Document {
        self.doc
    }

    /// Applies a command: the single entry point for every mutation. Outside a transaction
    /// a command that changes the document is one undo step; inside one, the whole
    /// transaction is. On error nothing changes.
    pub fn apply(&mut self, command: Command) -> Result<Outcome, EditError> {
        if self.transaction.is_some() {
            return self.doc.apply(command);
        }
        let before = self.doc.clone();
        let outcome = self.doc.apply(command)?;
        if self.doc != before {
            self.push_undo(before);
        }
        Ok(outcome)
    }

    /// Starts a transaction (e.g. at the start of a drag). Nested calls are ignored.
    pub fn begin_transaction(&mut self) {
        if self.transaction.is_none() {
            self.transaction = Some(self.doc.clone());
        }
    }

    /// Ends the transaction: one undo step if the document changed, none otherwise.
    pub fn commit_transaction(&mut self) {
        if let Some(before) = self.transaction.take()
            && self.doc != before
        {
            self.push_undo(before);
        }
    }

    /// Ends the transaction and restores the document as it was at its start.
    pub fn cancel_transaction(&mut self) {
        if let Some(before) = self.transaction.take() {
            self.doc = before;
        }
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.transaction.is_some()
    }

    /// Undoes the last step (commits an open transaction first). False if nothing to undo.
    pub fn undo(&mut self) -> bool {
        self.commit_transaction();
        let Some(prev) = self.undo.pop_back() else {
            return false;
        };
        self.redo.push(std::mem::replace(&mut self.doc, prev));
        true
    }

    /// Redoes the last undone step. False if nothing to redo.
    pub fn redo(&mut self) -> bool {
        self.commit_transaction();
        let Some(next) = self.redo.pop() else {
            return false;
        };
        let prev = std::mem::replace(&mut self.doc, next);
        self.undo.push_back(prev);
        self.trim();
        true
    }

    /// Number of available undo steps.
    pub fn undo_len(&self) -> usize {
        self.undo.len()
    }

    /// Number of available redo steps.
    pub fn redo_len(&self) -> usize {
        self.redo.len()
    }

    fn push_undo(&mut self, before: Document) {
        self.undo.push_back(before);
        self.redo.clear();
        self.trim();
    }

    fn trim(&mut self) {
        while self.undo.len() > self.cap {
            self.undo.pop_front();
        }
    }
}
