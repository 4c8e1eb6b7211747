//! The MongoDB store (production history store), on the official async driver.
//!
//! # Collections
//!
//! * `jobs`: one document per job, its latest version: the [`StoredJob`] fields (serde),
//!   `_id` = the job id, and for finished jobs a `record` subdocument holding the
//!   [`JobRecord`] (the rustci-datasets schema), so the retraining side can read history
//!   records straight from this collection. Indexes: `{tenant: 1, _id: 1}`,
//!   `{state: 1, _id: 1}`, `{end_ms: 1}` and the unique `{tenant: 1, request_id: 1}`
//!   (idempotency safety net).
//! * `job_changes`: the change log, `{_id: revision, job_id, tenant, job: <StoredJob>}`;
//!   index `{tenant: 1, _id: 1}`.
//!   A pipeline job's `pipeline` subdocument ([`super::PipelineJobInfo`]) names its
//!   pipeline; index `{pipeline.pipeline: 1, _id: 1}`.
//! * `pipelines`: the [`StoredPipeline`] fields, `_id` = the pipeline id. Indexes:
//!   `{state: 1, _id: 1}` and the unique `{tenant: 1, request_id: 1}`.
//! * `runners`: the [`StoredRunner`] fields, `_id` = the runner id.
//! * `meta`: `{_id: "max_fencing_token", value}`, the high-water mark of fencing tokens,
//!   and `{_id: "writer_epoch", value, commits}`: [`Store::take_over`] raises `value`,
//!   and every commit of the handle that took over increments `commits` inside its
//!   transaction, on the condition that `value` is still its own (so a later take-over
//!   and an earlier writer's commit touch one document, and one of them must wait for or
//!   abort the other).
//!
//! [`read_history`] (behind [`super::history::read_history`], the source of `rustci
//! retrain`) maps the job fields with [`StoredJob::history_record`], the same mapping the
//! `record` subdocument of every finished job is written with.
//!
//! # Runtime
//!
//! The [`Store`] trait is synchronous; each call runs the driver's future with
//! `tokio::task::block_in_place(|| Handle::current().block_on(..))`. That needs a
//! **multi-thread** tokio runtime (`#[tokio::main]` default, or
//! `#[tokio::test(flavor = "multi_thread")]`); on a current-thread runtime or outside any
//! runtime the calls fail with [`StoreError::Other`] instead of panicking.
//!
//! # Atomicity
//!
//! When the server supports transactions (a replica set or a sharded cluster), every
//! [`Store::commit`] is one multi-document transaction (write concern majority + journal
//! unless the URI sets one): all of the batch or nothing. On a standalone server there
//! are no transactions: the batch is written as ordered writes (jobs, then the change
//! log, then runners), each retried once by the driver. A failure part way leaves the
//! earlier writes of the batch in place (for example a job updated without its change-log
//! entry); the caller gets the error and must treat the batch as not committed. Run
//! MongoDB as a replica set (a single-node one is enough) for all-or-nothing commits.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mongodb::bson::{self, doc, Bson, Document};
use mongodb::error::{TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
use mongodb::options::{ClientOptions, IndexOptions, WriteConcern};
use mongodb::{Client, ClientSession, Collection, Database, IndexModel};
use tokio::runtime::{Handle, RuntimeFlavor};

use rustci_datasets::record::JobRecord;

use super::{
    oldest_kept, trim_budget, Batch, JobFilter, JobState, PipelineFilter, PipelineStatus, Snapshot,
    Store, StoreError, StoredJob, StoredPipeline, StoredRunner, PRUNE_NOW,
};

/// The database `rustci serve --store mongodb://…` and `rustci retrain --from
/// mongodb://…` use when the URI names none.
pub const DEFAULT_DATABASE: &str = "rustci";

/// The database a MongoDB URI names in its path (`mongodb://h/DB`), else
/// [`DEFAULT_DATABASE`]; the error is the driver's reason the URI is malformed.
pub fn database_of(uri: &str) -> Result<String, mongodb::error::Error> {
    let cs = mongodb::options::ConnectionString::parse(uri)?;
    Ok(cs
        .default_database
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| DEFAULT_DATABASE.to_string()))
}

/// At most this many retries of one commit, on errors the driver labels as worth
/// retrying (`TransientTransactionError`: the whole transaction again;
/// `UnknownTransactionCommitResult`: the commit call again), and none after
/// [`RETRY_WINDOW`]. With [`backoff`] the pauses add up to 1.9 s: long enough for a
/// conflicting writer's transaction to end, short enough that a request does not wait
/// much longer before `UNAVAILABLE`.
const TXN_RETRIES: u32 = 8;

/// No retry starts later than this after the commit's first try.
const RETRY_WINDOW: std::time::Duration = std::time::Duration::from_secs(3);

fn retry_allowed(retries: u32, started: std::time::Instant) -> bool {
    retries < TXN_RETRIES && started.elapsed() < RETRY_WINDOW
}

/// The pause before retry `n` (1-based): 10 ms doubling, at most 640 ms.
fn backoff(n: u32) -> std::time::Duration {
    std::time::Duration::from_millis(10u64 << n.saturating_sub(1).min(6))
}

/// Retries made by every [`MongoStore`] of this process (the metrics endpoint reads it).
static RETRIES: AtomicU64 = AtomicU64::new(0);

/// Commit retries (whole transactions and commit calls) made by this process's MongoDB
/// stores since it started.
pub fn retries() -> u64 {
    RETRIES.load(Ordering::Relaxed)
}

fn finished_states() -> Vec<&'static str> {
    [
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Skipped,
    ]
    .map(JobState::as_str)
    .to_vec()
}

/// The MongoDB implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct MongoStore {
    client: Client,
    db: Database,
    jobs: Collection<Document>,
    changes: Collection<Document>,
    runners: Collection<Document>,
    pipelines: Collection<Document>,
    meta: Collection<Document>,
    transactions: bool,
    max_fencing_token: u64,
    /// Change-log entries to keep once [`MongoStore::prune_changes`] was asked to: from
    /// then on every commit trims a little of the rest.
    keep_changes: Option<u64>,
    /// No change-log entry is older than this (0: not known yet): trimming asks the
    /// database for the oldest entry only once.
    oldest_at_least: u64,
    /// The user the URI authenticates as (name, authentication database), whose sessions
    /// [`Store::take_over`] ends.
    user: Option<(String, String)>,
    /// Retries of this store's commits (also counted in [`retries`]).
    retried: Arc<AtomicU64>,
    /// The writer epoch this handle took over with ([`Store::take_over`]); `None`:
    /// commits are not fenced.
    epoch: Option<i64>,
}

/// The `meta` document of the writer epoch.
const WRITER_EPOCH: &str = "writer_epoch";

/// The epoch in a `meta` writer-epoch document (0 when there is none).
fn epoch_of(d: Option<&Document>) -> Result<i64, StoreError> {
    match d.and_then(|d| d.get("value")) {
        None => Ok(0),
        Some(Bson::Int64(v)) if *v >= 0 => Ok(*v),
        Some(Bson::Int32(v)) if *v >= 0 => Ok(i64::from(*v)),
        Some(other) => Err(corrupt(
            format!("meta {WRITER_EPOCH}"),
            format!("bad value {other:?}"),
        )),
    }
}

fn me(e: mongodb::error::Error) -> StoreError {
    StoreError::Mongo(Box::new(e))
}

fn to_i64(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Other(format!("{what} {v} does not fit a BSON int64")))
}

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Runs `fut` to completion from synchronous code inside a multi-thread tokio runtime.
fn block_on<F: Future>(fut: F) -> Result<F::Output, StoreError> {
    let handle = Handle::try_current().map_err(|_| {
        StoreError::Other("the MongoDB store must be used inside a tokio runtime".into())
    })?;
    if handle.runtime_flavor() == RuntimeFlavor::CurrentThread {
        return Err(StoreError::Other(
            "the MongoDB store needs a multi-thread tokio runtime (block_in_place)".into(),
        ));
    }
    Ok(tokio::task::block_in_place(|| handle.block_on(fut)))
}

fn corrupt(what: String, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what,
        reason: reason.to_string(),
    }
}

fn id_string(doc: &Document) -> String {
    match doc.get("_id") {
        Some(Bson::Int64(v)) => v.to_string(),
        Some(Bson::Int32(v)) => v.to_string(),
        Some(Bson::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "?".into(),
    }
}

fn job_from_doc(doc: Document) -> Result<StoredJob, StoreError> {
    let id = id_string(&doc);
    bson::from_document(doc).map_err(|e| corrupt(format!("job {id} in collection jobs"), e))
}

fn job_doc(j: &StoredJob) -> Result<Document, StoreError> {
    let mut d = bson::to_document(j)
        .map_err(|e| StoreError::Other(format!("job {}: cannot encode as BSON: {e}", j.id)))?;
    d.insert("_id", to_i64(j.id, "job id")?);
    if let Some(record) = j.history_record() {
        let rec = bson::to_document(&record).map_err(|e| {
            StoreError::Other(format!(
                "job {}: cannot encode its record as BSON: {e}",
                j.id
            ))
        })?;
        d.insert("record", rec);
    }
    Ok(d)
}

fn change_doc(j: &StoredJob) -> Result<Document, StoreError> {
    let job = bson::to_document(j)
        .map_err(|e| StoreError::Other(format!("job {}: cannot encode as BSON: {e}", j.id)))?;
    Ok(doc! {
        "_id": to_i64(j.revision, "revision")?,
        "job_id": to_i64(j.id, "job id")?,
        "tenant": &j.tenant,
        "job": job,
    })
}

fn pipeline_doc(p: &StoredPipeline) -> Result<Document, StoreError> {
    let mut d = bson::to_document(p)
        .map_err(|e| StoreError::Other(format!("pipeline {}: cannot encode as BSON: {e}", p.id)))?;
    d.insert("_id", to_i64(p.id, "pipeline id")?);
    Ok(d)
}

fn pipeline_from_doc(doc: Document) -> Result<StoredPipeline, StoreError> {
    let id = id_string(&doc);
    bson::from_document(doc)
        .map_err(|e| corrupt(format!("pipeline {id} in collection pipelines"), e))
}

fn runner_doc(r: &StoredRunner) -> Result<Document, StoreError> {
    let mut d = bson::to_document(r)
        .map_err(|e| StoreError::Other(format!("runner {}: cannot encode as BSON: {e}", r.id)))?;
    d.insert("_id", r.id.clone());
    Ok(d)
}

/// A batch encoded as documents, ready to write (possibly several times, on retries).
struct Encoded {
    jobs: Vec<(i64, Document)>,
    changes: Vec<Document>,
    runners: Vec<(String, Document)>,
    pipelines: Vec<(i64, Document)>,
    removed: Vec<String>,
    max_token: Option<i64>,
}

impl MongoStore {
    /// Connects (from synchronous code inside a multi-thread tokio runtime), creates the
    /// indexes if missing and reads the fencing-token high-water mark. Only `mongodb://`
    /// URIs (no DNS SRV resolver is built in).
    pub fn connect(uri: &str, database: &str) -> Result<Self, StoreError> {
        block_on(Self::connect_async(uri, database))?
    }

    /// [`MongoStore::connect`] for async callers.
    pub async fn connect_async(uri: &str, database: &str) -> Result<Self, StoreError> {
        let mut opts = ClientOptions::parse(uri).await.map_err(me)?;
        if opts.write_concern.is_none() {
            let mut wc = WriteConcern::majority();
            wc.journal = Some(true);
            opts.write_concern = Some(wc);
        }
        if opts.app_name.is_none() {
            opts.app_name = Some("rustci".into());
        }
        let user = opts.credential.as_ref().and_then(|c| {
            let name = c.username.clone()?;
            let source = c
                .source
                .clone()
                .or_else(|| opts.default_database.clone())
                .unwrap_or_else(|| "admin".into());
            Some((name, source))
        });
        let client = Client::with_options(opts).map_err(me)?;
        let db = client.database(database);
        let hello = db.run_command(doc! { "hello": 1 }).await.map_err(me)?;
        let transactions = hello.contains_key("logicalSessionTimeoutMinutes")
            && (hello.contains_key("setName") || hello.get_str("msg").ok() == Some("isdbgrid"));

        let jobs = db.collection::<Document>("jobs");
        let changes = db.collection::<Document>("job_changes");
        let runners = db.collection::<Document>("runners");
        let pipelines = db.collection::<Document>("pipelines");
        let meta = db.collection::<Document>("meta");
        let index = |keys: Document, unique: bool| {
            let mut model = IndexModel::builder().keys(keys).build();
            if unique {
                model.options = Some(IndexOptions::builder().unique(true).build());
            }
            model
        };
        jobs.create_indexes([
            index(doc! { "tenant": 1, "_id": 1 }, false),
            index(doc! { "state": 1, "_id": 1 }, false),
            index(doc! { "end_ms": 1 }, false),
            index(doc! { "tenant": 1, "request_id": 1 }, true),
            index(doc! { "pipeline.pipeline": 1, "_id": 1 }, false),
        ])
        .await
        .map_err(me)?;
        pipelines
            .create_indexes([
                index(doc! { "state": 1, "_id": 1 }, false),
                index(doc! { "tenant": 1, "request_id": 1 }, true),
            ])
            .await
            .map_err(me)?;
        changes
            .create_index(index(doc! { "tenant": 1, "_id": 1 }, false))
            .await
            .map_err(me)?;

        let max_fencing_token = match meta
            .find_one(doc! { "_id": "max_fencing_token" })
            .await
            .map_err(me)?
        {
            None => 0,
            Some(d) => match d.get("value") {
                Some(Bson::Int64(v)) if *v >= 0 => *v as u64,
                Some(Bson::Int32(v)) if *v >= 0 => *v as u64,
                other => {
                    return Err(corrupt(
                        "meta max_fencing_token".into(),
                        format!("bad value {other:?}"),
                    ))
                }
            },
        };
        Ok(Self {
            client,
            db,
            jobs,
            changes,
            runners,
            pipelines,
            meta,
            transactions,
            keep_changes: None,
            oldest_at_least: 0,
            max_fencing_token,
            user,
            retried: Arc::new(AtomicU64::new(0)),
            epoch: None,
        })
    }

    /// How many times this store's commits were retried so far; the counter stays live
    /// (a test reads it while a commit waits on a conflict).
    pub fn retry_counter(&self) -> Arc<AtomicU64> {
        self.retried.clone()
    }

    fn count_retry(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
        RETRIES.fetch_add(1, Ordering::Relaxed);
    }

    /// [`Store::take_over`] for async callers. First `killAllSessions` for the user the
    /// URI authenticates as (every session, without authentication), which aborts the
    /// open transactions of a server that died mid-commit: MongoDB would otherwise keep
    /// them for `transactionLifetimeLimitSeconds` (60 s by default), and every commit
    /// touching their documents would conflict until then. A failure there is warned
    /// about, not returned. Then the writer epoch is raised and kept, which fences every
    /// earlier writer. Only a server about to write calls it: a standby reading the store
    /// does not.
    pub async fn take_over_async(&mut self) -> Result<(), StoreError> {
        let users: Vec<Document> = match &self.user {
            Some((user, db)) => vec![doc! { "user": user, "db": db }],
            None => Vec::new(),
        };
        if let Err(e) = self
            .client
            .database("admin")
            .run_command(doc! { "killAllSessions": users })
            .await
        {
            tracing::warn!(error = %e, "cannot end the sessions a previous server left open; commits that meet them retry until the database ends them");
        }
        let raised = self
            .meta
            .find_one_and_update(
                doc! { "_id": WRITER_EPOCH },
                doc! { "$inc": { "value": 1_i64 } },
            )
            .upsert(true)
            .return_document(mongodb::options::ReturnDocument::After)
            .await
            .map_err(me)?;
        self.epoch = Some(epoch_of(raised.as_ref())?);
        Ok(())
    }

    /// The store's writer epoch now (0 before any take-over).
    async fn current_epoch(&self) -> Result<i64, StoreError> {
        let d = self
            .meta
            .find_one(doc! { "_id": WRITER_EPOCH })
            .await
            .map_err(me)?;
        epoch_of(d.as_ref())
    }

    /// [`StoreError::Fenced`] for this handle's epoch `mine`.
    async fn fenced(&self, mine: i64) -> StoreError {
        let current = self.current_epoch().await.unwrap_or(-1);
        StoreError::Fenced {
            mine: mine as u64,
            current: u64::try_from(current).unwrap_or(u64::MAX),
        }
    }

    /// The database (e.g. for tests to drop it).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Whether commits run as multi-document transactions (replica set / sharded cluster).
    pub fn uses_transactions(&self) -> bool {
        self.transactions
    }

    /// Deletes change-log documents older than the newest `keep_last` (at least 1 kept),
    /// at most [`PRUNE_NOW`] at once, and returns how many went; from then on every
    /// commit also deletes up to twice as many old entries as it adds, until the log is
    /// back to `keep_last`. `WatchJobs` cannot resume before the oldest kept revision.
    pub fn prune_changes(&mut self, keep_last: u64) -> Result<u64, StoreError> {
        let keep = keep_last.max(1);
        self.keep_changes = Some(keep);
        block_on(async {
            let newest = Self::max_id(&self.changes).await?;
            self.trim_changes(newest, keep, PRUNE_NOW).await
        })?
    }

    /// Deletes up to `limit` of the oldest change-log entries that fall outside the
    /// newest `keep` (counted back from revision `newest`); returns how many went.
    /// Revisions only grow, so the bound is a range of `_id`s on its index: below the
    /// cutoff and at most `limit` revisions above the oldest. The oldest is looked up
    /// once; after that every deletion raises the known lower bound, so a commit in the
    /// steady state costs one `delete_many`.
    async fn trim_changes(
        &mut self,
        newest: u64,
        keep: u64,
        limit: u64,
    ) -> Result<u64, StoreError> {
        let Some(cutoff) = oldest_kept(newest, keep) else {
            return Ok(0);
        };
        if cutoff <= self.oldest_at_least {
            return Ok(0);
        }
        if self.oldest_at_least == 0 {
            match self.oldest_change_async().await? {
                Some(oldest) => self.oldest_at_least = oldest,
                None => return Ok(0),
            }
        }
        let upto = cutoff.min(self.oldest_at_least.saturating_add(limit));
        if upto <= self.oldest_at_least {
            return Ok(0);
        }
        let res = self
            .changes
            .delete_many(doc! { "_id": { "$lt": to_i64(upto, "revision")? } })
            .await
            .map_err(me)?;
        self.oldest_at_least = upto;
        Ok(res.deleted_count)
    }

    fn encode(&self, batch: &Batch) -> Result<Encoded, StoreError> {
        let mut enc = Encoded {
            jobs: Vec::with_capacity(batch.jobs.len()),
            changes: Vec::with_capacity(batch.jobs.len()),
            runners: Vec::with_capacity(batch.runners.len()),
            pipelines: Vec::with_capacity(batch.pipelines.len()),
            removed: batch.removed_runners.clone(),
            max_token: None,
        };
        let mut max_token = self.max_fencing_token;
        for j in &batch.jobs {
            enc.jobs.push((to_i64(j.id, "job id")?, job_doc(j)?));
            enc.changes.push(change_doc(j)?);
            max_token = max_token.max(j.fencing_token);
        }
        for r in &batch.runners {
            enc.runners.push((r.id.clone(), runner_doc(r)?));
        }
        for p in &batch.pipelines {
            enc.pipelines
                .push((to_i64(p.id, "pipeline id")?, pipeline_doc(p)?));
        }
        if max_token > self.max_fencing_token {
            enc.max_token = Some(to_i64(max_token, "fencing token")?);
        }
        Ok(enc)
    }

    /// Writes the batch; `Ok(false)` when the store's writer epoch is no longer this
    /// handle's (fenced: nothing of the batch was written).
    async fn write(
        &self,
        enc: &Encoded,
        mut session: Option<&mut ClientSession>,
    ) -> Result<bool, mongodb::error::Error> {
        if let Some(mine) = self.epoch {
            // A write, not a read: in a transaction a read of the epoch would not
            // conflict with a take-over committed meanwhile.
            let mut op = self.meta.update_one(
                doc! { "_id": WRITER_EPOCH, "value": mine },
                doc! { "$inc": { "commits": 1_i64 } },
            );
            if let Some(s) = session.as_deref_mut() {
                op = op.session(s);
            }
            if op.await?.matched_count == 0 {
                return Ok(false);
            }
        }
        for (id, d) in &enc.jobs {
            let mut op = self.jobs.replace_one(doc! { "_id": *id }, d).upsert(true);
            if let Some(s) = session.as_deref_mut() {
                op = op.session(s);
            }
            op.await?;
        }
        if !enc.changes.is_empty() {
            let mut op = self.changes.insert_many(&enc.changes).ordered(true);
            if let Some(s) = session.as_deref_mut() {
                op = op.session(s);
            }
            op.await?;
        }
        for (id, d) in &enc.pipelines {
            let mut op = self
                .pipelines
                .replace_one(doc! { "_id": *id }, d)
                .upsert(true);
            if let Some(s) = session.as_deref_mut() {
                op = op.session(s);
            }
            op.await?;
        }
        for (id, d) in &enc.runners {
            let mut op = self.runners.replace_one(doc! { "_id": id }, d).upsert(true);
            if let Some(s) = session.as_deref_mut() {
                op = op.session(s);
            }
            op.await?;
        }
        if !enc.removed.is_empty() {
            let mut op = self
                .runners
                .delete_many(doc! { "_id": { "$in": &enc.removed } });
            if let Some(s) = session.as_deref_mut() {
                op = op.session(s);
            }
            op.await?;
        }
        if let Some(tok) = enc.max_token {
            let mut op = self
                .meta
                .update_one(
                    doc! { "_id": "max_fencing_token" },
                    doc! { "$max": { "value": tok } },
                )
                .upsert(true);
            if let Some(s) = session {
                op = op.session(s);
            }
            op.await?;
        }
        Ok(true)
    }

    /// [`Store::commit`] for async callers.
    pub async fn commit_async(&mut self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let enc = self.encode(batch)?;
        if !self.transactions {
            if !self.write(&enc, None).await.map_err(me)? {
                return Err(self.fenced(self.epoch.unwrap_or(0)).await);
            }
        } else {
            let mut session = self.client.start_session().await.map_err(me)?;
            // One budget for both kinds of retry, so a commit gives up after at most
            // TXN_RETRIES retries and RETRY_WINDOW, however the errors mix.
            let started = std::time::Instant::now();
            let mut retries = 0;
            'txn: loop {
                session.start_transaction().await.map_err(me)?;
                let written = self.write(&enc, Some(&mut session)).await;
                if let Ok(false) = written {
                    let _ = session.abort_transaction().await;
                    return Err(self.fenced(self.epoch.unwrap_or(0)).await);
                }
                if let Err(e) = written {
                    // Aborting can fail if the server already aborted; the original error matters.
                    let _ = session.abort_transaction().await;
                    if e.contains_label(TRANSIENT_TRANSACTION_ERROR)
                        && retry_allowed(retries, started)
                    {
                        retries += 1;
                        self.count_retry();
                        tokio::time::sleep(backoff(retries)).await;
                        continue 'txn;
                    }
                    return Err(me(e));
                }
                loop {
                    let e = match session.commit_transaction().await {
                        Ok(()) => break 'txn,
                        Err(e) => e,
                    };
                    // Retry the commit itself when its outcome is unknown, the whole
                    // transaction when it is transient.
                    let commit_again = e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT);
                    if !(commit_again || e.contains_label(TRANSIENT_TRANSACTION_ERROR))
                        || !retry_allowed(retries, started)
                    {
                        return Err(me(e));
                    }
                    retries += 1;
                    self.count_retry();
                    tokio::time::sleep(backoff(retries)).await;
                    if !commit_again {
                        continue 'txn;
                    }
                }
            }
        }
        if let Some(tok) = enc.max_token {
            self.max_fencing_token = tok as u64;
        }
        if let (Some(keep), Some(newest)) = (
            self.keep_changes,
            batch.jobs.iter().map(|j| j.revision).max(),
        ) {
            // After the batch is durable, and outside its transaction: a failed trim
            // loses nothing (the next commit or prune deletes those entries).
            let added = batch.jobs.len() as u64;
            if let Err(e) = self.trim_changes(newest, keep, trim_budget(added)).await {
                tracing::warn!(error = %e, "cannot trim the change log; retrying at the next commit");
            }
        }
        Ok(())
    }

    async fn find_jobs(
        &self,
        filter: Document,
        sort: Document,
        limit: Option<i64>,
    ) -> Result<Vec<StoredJob>, StoreError> {
        let mut find = self.jobs.find(filter).sort(sort);
        if let Some(l) = limit {
            find = find.limit(l);
        }
        collect(find.await.map_err(me)?, |d| job_from_doc(d).map(Some)).await
    }

    async fn max_id(coll: &Collection<Document>) -> Result<u64, StoreError> {
        Ok(Self::edge_id(coll, -1).await?.unwrap_or(0))
    }

    /// The highest (`order` -1) or lowest (1) integer `_id` of `coll`, if it has any.
    async fn edge_id(coll: &Collection<Document>, order: i32) -> Result<Option<u64>, StoreError> {
        let d = coll
            .find_one(doc! {})
            .sort(doc! { "_id": order })
            .await
            .map_err(me)?;
        Ok(match d.as_ref().and_then(|d| d.get("_id")) {
            Some(Bson::Int64(v)) if *v >= 0 => Some(*v as u64),
            Some(Bson::Int32(v)) if *v >= 0 => Some(*v as u64),
            None => None,
            Some(other) => {
                return Err(corrupt(
                    format!("collection {} _id", coll.name()),
                    format!("not an id: {other}"),
                ))
            }
        })
    }

    /// The oldest revision still in the change log, if any.
    pub async fn oldest_change_async(&self) -> Result<Option<u64>, StoreError> {
        Self::edge_id(&self.changes, 1).await
    }

    /// [`Store::load`] for async callers.
    pub async fn load_async(&self, finished_since_ms: i64) -> Result<Snapshot, StoreError> {
        let unfinished = self
            .find_jobs(
                doc! { "state": { "$in": [JobState::Queued.as_str(), JobState::Leased.as_str()] } },
                doc! { "_id": 1 },
                None,
            )
            .await?;
        let recently_finished = self
            .find_jobs(
                doc! { "end_ms": { "$gte": finished_since_ms }, "state": { "$in": finished_states() } },
                doc! { "_id": 1 },
                None,
            )
            .await?;
        let cur = self
            .runners
            .find(doc! {})
            .sort(doc! { "_id": 1 })
            .await
            .map_err(me)?;
        let runners = collect(cur, |d| {
            let id = id_string(&d);
            bson::from_document(d)
                .map(Some)
                .map_err(|e| corrupt(format!("runner {id}"), e))
        })
        .await?;
        let max_job_id = Self::max_id(&self.jobs).await?;
        let max_change = Self::max_id(&self.changes).await?;
        Ok(Snapshot::new(
            unfinished,
            runners,
            recently_finished,
            max_job_id,
            max_change,
            self.max_fencing_token,
        ))
    }

    async fn list_jobs_async(
        &self,
        filter: &JobFilter,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<StoredJob>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut f = doc! { "_id": { "$gt": to_i64(after_id, "job id")? } };
        if let Some(t) = &filter.tenant {
            f.insert("tenant", t.clone());
        }
        if let Some(s) = filter.state {
            f.insert("state", s.as_str());
        }
        if let Some(r) = &filter.request_id {
            f.insert("request_id", r.clone());
        }
        self.find_jobs(f, doc! { "_id": 1 }, Some(limit_i64(limit)))
            .await
    }

    async fn list_pipelines_async(
        &self,
        filter: &PipelineFilter,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<StoredPipeline>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut f = doc! { "_id": { "$gt": to_i64(after_id, "pipeline id")? } };
        for (key, v) in [
            ("tenant", filter.tenant.as_deref()),
            ("state", filter.state.map(PipelineStatus::as_str)),
            ("project", filter.project.as_deref()),
            ("git_ref", filter.git_ref.as_deref()),
            ("request_id", filter.request_id.as_deref()),
        ] {
            if let Some(v) = v {
                f.insert(key, v);
            }
        }
        let cur = self
            .pipelines
            .find(f)
            .sort(doc! { "_id": 1 })
            .limit(limit_i64(limit))
            .await
            .map_err(me)?;
        collect(cur, |d| pipeline_from_doc(d).map(Some)).await
    }

    async fn changes_since_async(
        &self,
        after: u64,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredJob>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut f = doc! { "_id": { "$gt": to_i64(after, "revision")? } };
        if let Some(t) = tenant {
            f.insert("tenant", t);
        }
        let cur = self
            .changes
            .find(f)
            .sort(doc! { "_id": 1 })
            .limit(limit_i64(limit))
            .await
            .map_err(me)?;
        collect(cur, |d| {
            let rev = id_string(&d);
            let what = || {
                format!(
                    "job_changes revision {rev} (job {:?}) field job",
                    d.get("job_id")
                )
            };
            let job = d
                .get_document("job")
                .map_err(|e| corrupt(what(), e))?
                .clone();
            bson::from_document(job)
                .map(Some)
                .map_err(|e| corrupt(what(), e))
        })
        .await
    }

    async fn history_async(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let jobs = self
            .find_jobs(
                doc! { "end_ms": { "$gte": since_ms }, "state": { "$in": finished_states() } },
                doc! { "end_ms": 1, "_id": 1 },
                Some(limit_i64(limit)),
            )
            .await?;
        Ok(jobs.iter().filter_map(StoredJob::history_record).collect())
    }
}

/// Every finished job (succeeded, failed, cancelled, with a start and an end) in the
/// `jobs` collection of `database`, as history records ordered by submit time, then id
/// (mapping: [`super::record`]).
///
/// Only reads, with one query (no index is created, unlike [`MongoStore::connect`]): the
/// `read` role is enough, and any tokio runtime will do. A database without a `jobs`
/// collection is refused ([`StoreError::NotAStore`]) rather than read as empty history.
pub async fn read_history(uri: &str, database: &str) -> Result<Vec<JobRecord>, StoreError> {
    let mut opts = ClientOptions::parse(uri).await.map_err(me)?;
    if opts.app_name.is_none() {
        opts.app_name = Some("rustci-history".into());
    }
    let client = Client::with_options(opts).map_err(me)?;
    let db = client.database(database);
    let found = db
        .list_collection_names()
        .filter(doc! { "name": "jobs" })
        .await
        .map_err(me)?;
    if found.is_empty() {
        return Err(StoreError::NotAStore {
            path: format!("database {database}"),
            reason: format!(
                "it has no `jobs` collection (rustci serve writes to the database `{DEFAULT_DATABASE}`)"
            ),
        });
    }
    let jobs = db.collection::<Document>("jobs");
    let cur = jobs
        .find(doc! {
            "state": { "$in": finished_states() },
            "start_ms": { "$ne": Bson::Null },
            "end_ms": { "$ne": Bson::Null },
        })
        .projection(doc! { "record": 0 })
        .await
        .map_err(me)?;
    let out = collect(cur, |d| {
        let job = job_from_doc(d)?;
        Ok(job.history_record().map(|r| (job.submit_ms, job.id, r)))
    })
    .await?;
    Ok(super::record::sorted_records(out))
}

/// Every document `cur` yields, through `map` (`None` leaves one out), in its order.
async fn collect<T>(
    mut cur: mongodb::Cursor<Document>,
    mut map: impl FnMut(Document) -> Result<Option<T>, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    while cur.advance().await.map_err(me)? {
        let d: Document = cur.deserialize_current().map_err(me)?;
        out.extend(map(d)?);
    }
    Ok(out)
}

impl Store for MongoStore {
    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        block_on(self.commit_async(batch))?
    }

    fn take_over(&mut self) -> Result<(), StoreError> {
        block_on(self.take_over_async())?
    }

    fn prune_changes(&mut self, keep_last: u64) -> Result<u64, StoreError> {
        MongoStore::prune_changes(self, keep_last)
    }

    fn oldest_change(&mut self) -> Result<Option<u64>, StoreError> {
        block_on(self.oldest_change_async())?
    }

    fn load(&mut self, finished_since_ms: i64) -> Result<Snapshot, StoreError> {
        block_on(self.load_async(finished_since_ms))?
    }

    fn get_job(&mut self, id: u64) -> Result<Option<StoredJob>, StoreError> {
        let id = to_i64(id, "job id")?;
        let d = block_on(async { self.jobs.find_one(doc! { "_id": id }).await })?.map_err(me)?;
        d.map(job_from_doc).transpose()
    }

    fn list_jobs(
        &mut self,
        filter: &JobFilter,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<StoredJob>, StoreError> {
        block_on(self.list_jobs_async(filter, after_id, limit))?
    }

    fn changes_since(
        &mut self,
        after: u64,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredJob>, StoreError> {
        block_on(self.changes_since_async(after, tenant, limit))?
    }

    fn get_pipeline(&mut self, id: u64) -> Result<Option<StoredPipeline>, StoreError> {
        let id = to_i64(id, "pipeline id")?;
        let d =
            block_on(async { self.pipelines.find_one(doc! { "_id": id }).await })?.map_err(me)?;
        d.map(pipeline_from_doc).transpose()
    }

    fn list_pipelines(
        &mut self,
        filter: &PipelineFilter,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<StoredPipeline>, StoreError> {
        block_on(self.list_pipelines_async(filter, after_id, limit))?
    }

    fn pipeline_jobs(&mut self, id: u64) -> Result<Vec<StoredJob>, StoreError> {
        let id = to_i64(id, "pipeline id")?;
        block_on(self.find_jobs(doc! { "pipeline.pipeline": id }, doc! { "_id": 1 }, None))?
    }

    fn history(&mut self, since_ms: i64, limit: usize) -> Result<Vec<JobRecord>, StoreError> {
        block_on(self.history_async(since_ms, limit))?
    }
}
