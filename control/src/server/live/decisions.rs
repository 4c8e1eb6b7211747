//! The core's decisions as the live driver sees them: how many, the log of them (parity
//! tests), and the buffer each request collects them in.

use rustci_scheduler::{Decision, Millis};

#[derive(Debug, Default)]
pub(super) struct Decisions {
    /// Keep every decision in `log`.
    record: bool,
    log: Vec<(Millis, Decision)>,
    total: u64,
    /// Reused by each request for the decisions of its events.
    scratch: Vec<Decision>,
}

impl Decisions {
    pub(super) fn new(record: bool) -> Self {
        Self {
            record,
            ..Self::default()
        }
    }

    /// An empty buffer for a request's decisions; give it back with
    /// [`Decisions::give_back`] so the next request reuses its memory.
    pub(super) fn buffer(&mut self) -> Vec<Decision> {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        out
    }

    pub(super) fn give_back(&mut self, buffer: Vec<Decision>) {
        self.scratch = buffer;
    }

    /// Counts (and with `record`, logs) decisions applied at `now`.
    pub(super) fn applied(&mut self, now: Millis, decisions: &[Decision]) {
        self.total += decisions.len() as u64;
        if self.record {
            self.log.extend(decisions.iter().map(|&d| (now, d)));
        }
    }

    pub(super) fn total(&self) -> u64 {
        self.total
    }

    pub(super) fn log(&self) -> &[(Millis, Decision)] {
        &self.log
    }
}
