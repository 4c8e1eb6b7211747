//! Proptest strategies for `JobRecord`s, shared by the CSV and Parquet round trips.

use proptest::prelude::*;
use rustci_datasets::record::{PipelineRef, When, MAX_TIME_S};
use rustci_datasets::{JobRecord, Outcome};

/// Text that survives a CSV cell: non-empty, no surrounding whitespace, but may hold
/// commas, quotes, `;` and inner spaces.
pub fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_./,;\" -]{1,12}"
        .prop_map(|s| s.trim().to_string())
        .prop_filter("non-empty after trim", |s| !s.is_empty())
}

pub fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

pub fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Success),
        Just(Outcome::Failure),
        Just(Outcome::Cancelled),
        Just(Outcome::Skipped),
        Just(Outcome::Manual),
        Just(Outcome::Unknown),
    ]
}

/// Job names as GitLab writes them: matrix brackets, commas, quotes, spaces.
pub fn job_name() -> impl Strategy<Value = String> {
    prop_oneof![
        text(),
        ("[a-z_]{1,8}", "[a-z0-9 ,\"$]{0,10}").prop_map(|(n, v)| format!("{n}: [{v}]")),
    ]
}

pub fn pipeline() -> impl Strategy<Value = PipelineRef> {
    (
        (text(), clock_time(), opt_text(), any::<u32>()),
        proptest::option::of(proptest::collection::vec(job_name(), 0..4)),
        prop_oneof![
            Just(When::OnSuccess),
            Just(When::OnFailure),
            Just(When::Always),
            Just(When::Manual),
        ],
        (any::<bool>(), any::<bool>(), opt_text()),
    )
        .prop_map(
            |(
                (id, created_s, stage, stage_index),
                needs,
                when,
                (allow_failure, interruptible, group),
            )| {
                PipelineRef {
                    id,
                    created_s,
                    stage: stage.unwrap_or_default(),
                    stage_index,
                    needs,
                    when,
                    allow_failure,
                    interruptible,
                    group,
                }
            },
        )
}

/// Any time the reader takes: within `MAX_TIME_S` of 0 either way (beyond it is refused,
/// see `input_limits.rs`).
pub fn clock_time() -> impl Strategy<Value = i64> {
    -MAX_TIME_S..=MAX_TIME_S
}

pub fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO,
        (-1_000_000i64..1_000_000).prop_map(|v| v as f64 / 100.0),
    ]
}

prop_compose! {
    pub fn record()(
        id in text(),
        tenant in text(),
        project in opt_text(),
        job_name in opt_text(),
        branch in opt_text(),
        labels in proptest::collection::vec("[a-z0-9-]{1,8}", 0..4),
        slots in any::<u32>(),
        requested_s in proptest::option::of(clock_time()),
        submit_s in clock_time(),
        wait_s in proptest::option::of(-10i64..1_000_000),
        run_s in proptest::option::of(0i64..10_000_000),
        outcome in outcome(),
        qos in opt_text(),
        queue in opt_text(),
        extra in proptest::collection::btree_map("[a-z_]{1,6}", finite(), 0..4),
        pipeline in proptest::option::of(pipeline()),
    ) -> JobRecord {
        JobRecord {
            id, tenant, project, job_name, branch, labels, slots, requested_s, submit_s,
            wait_s, run_s, outcome, qos, queue, extra, pipeline,
        }
    }
}
