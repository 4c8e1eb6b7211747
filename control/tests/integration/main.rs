//! The control crate's integration tests, one test binary with a module per topic (each
//! binary links tonic, mongodb and rusqlite, so one links them once). These test the
//! crate's parts from inside: the stores, the history source, `Live` rebuilt from a store,
//! Redis coordination. Tests that drive the service from outside (over sockets, as
//! processes, against the simulator) are the workspace's `tests/` crate.

mod common;
mod store_fixtures;
mod support_mongo;
mod support_redis;

mod commit_failure;
mod history;
mod pipeline_answers;
mod redis_coord;
mod restart;
mod store_mongo;
mod store_sqlite;
