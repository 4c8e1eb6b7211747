//! The autoscaler, by hand: Erlang C numbers, reactive and predictive sizing, min/max,
//! idle timeout, warm pool, scale to zero and spot settings; and a property test that it
//! stays within [min, max] and never releases a runner with a job on it.

mod common;

use common::*;
use proptest::prelude::*;
use rustci_scheduler::autoscale::{erlang_c, servers_for, wait_exceeds};
use rustci_scheduler::*;

const HOUR: Millis = 3_600_000;

fn scaling(min: u32, max: u32, idle_timeout_ms: Millis) -> PoolScaling {
    PoolScaling {
        runners: 1,
        min_runners: min,
        max_runners: max,
        idle_timeout_ms,
        warm_pool: Vec::new(),
        scale_to_zero: false,
        spot: None,
    }
}

fn autoscale(policy: ScalePolicy, pools: Vec<PoolScaling>) -> AutoscaleConfig {
    AutoscaleConfig {
        policy,
        interval_ms: 15_000,
        epoch_ms: 0,
        pools,
        predictive: PredictiveSettings::default(),
    }
}

/// One pool `p0` of 1-slot runners.
fn one_pool() -> (Scheduler, CheckedConfig) {
    let config = config(PolicyConfig::default(), vec![pool("p0", 0, 1)], 1);
    (
        Scheduler::new(config.clone(), Box::new(RequestedTime::default())),
        config,
    )
}

fn join(s: &mut Scheduler, now: Millis, runner: u32) {
    s.handle(
        now,
        Event::RunnerJoined {
            runner: RunnerId(runner),
            pool: PoolId(0),
        },
        &mut Vec::new(),
    )
    .expect("join");
}

fn submit(s: &mut Scheduler, now: Millis, id: u64) {
    s.handle(
        now,
        Event::Submit(job(id, now, 1, 600_000)),
        &mut Vec::new(),
    )
    .expect("submit");
}

/// A forecast of a constant rate.
struct Constant(f64);

impl ArrivalForecast for Constant {
    fn expected_arrivals(&self, _pool: PoolId, _from: Millis, duration_ms: Millis) -> f64 {
        self.0 * duration_ms as f64 / HOUR as f64
    }
    fn name(&self) -> &str {
        "constant"
    }
}

#[test]
fn erlang_c_by_hand() {
    // M/M/1: a job waits with probability rho.
    assert!((erlang_c(1, 0.5) - 0.5).abs() < 1e-12);
    // M/M/2 at A = 1: B(2, 1) = (1/2) / (1 + 1 + 1/2) = 0.2; C = 2B / (2 - A(1 - B))
    // = 0.4 / 1.2 = 1/3.
    assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
    // B(3, 1) = 0.2 / 3.2 = 0.0625; C = 0.1875 / 2.0625 = 1/11.
    assert!((erlang_c(3, 1.0) - 1.0 / 11.0).abs() < 1e-12);
    // Unstable: everyone waits.
    assert_eq!(erlang_c(2, 2.0), 1.0);
    assert_eq!(erlang_c(3, 0.0), 0.0);
    // P(W > t) = C e^{-(c - A) t / S}: with c - A = 1 and t = S ln 2, half of C.
    let s = 60_000.0;
    assert!((wait_exceeds(2, 1.0, s, s * 2f64.ln()) - 1.0 / 6.0).abs() < 1e-12);
    // Fewest servers with P(wait) <= 5% at A = 1: C(3) = 0.0909, C(4) = 4 * 0.015385 /
    // (4 - 0.984615) = 0.0204.
    assert_eq!(servers_for(1.0, s, 0.0, 0.05, 100), 4);
    // Allowing a 60 s wait with 60 s jobs: C(2) e^{-1} = 0.123, C(3) e^{-2} = 0.0123.
    assert_eq!(servers_for(1.0, s, 60_000.0, 0.05, 100), 3);
    // The cap wins.
    assert_eq!(servers_for(1.0, s, 0.0, 0.05, 3), 3);
}

#[test]
fn reactive_asks_for_running_plus_waiting_less_what_is_coming() {
    let (mut s, config) = one_pool();
    join(&mut s, 0, 0);
    join(&mut s, 0, 1);
    for id in 0..5 {
        submit(&mut s, 1_000, id);
    }
    assert_eq!((s.running_count(), s.pending_count()), (2, 3));
    let checked = autoscale(ScalePolicy::Reactive, vec![scaling(0, 100, 60_000)])
        .check(&config)
        .expect("valid");
    let mut a = Autoscaler::new(checked, None);
    // 2 running + 3 waiting = 5 runners; 2 ready and 1 asked for already: 2 more.
    let d = &a.evaluate(2_000, &s, &[1])[0];
    assert_eq!((d.current, d.desired, d.add), (3, 5, 2));
    assert!(d.release.is_empty());
    assert!(d.reason.starts_with("reactive: 5 slots"), "{}", d.reason);
    // The same as the core's own advice.
    assert_eq!(s.reactive_advice()[0].desired, 5);
}

#[test]
fn min_and_max_clamp_the_desired_count() {
    let (mut s, config) = one_pool();
    join(&mut s, 0, 0);
    for id in 0..5 {
        submit(&mut s, 1_000, id);
    }
    let checked = autoscale(ScalePolicy::Reactive, vec![scaling(0, 4, 60_000)])
        .check(&config)
        .expect("valid");
    let d = &Autoscaler::new(checked, None).evaluate(2_000, &s, &[0])[0];
    assert_eq!((d.desired, d.add), (4, 3));
    assert!(d.reason.contains("clamped to [0, 4]"), "{}", d.reason);

    let (s, config) = one_pool();
    let checked = autoscale(ScalePolicy::Reactive, vec![scaling(3, 4, 60_000)])
        .check(&config)
        .expect("valid");
    let d = &Autoscaler::new(checked, None).evaluate(0, &s, &[0])[0];
    assert_eq!((d.desired, d.add), (3, 3));
}

#[test]
fn idle_runners_go_only_after_the_idle_timeout_and_busy_ones_never() {
    let (mut s, config) = one_pool();
    for r in 0..4 {
        join(&mut s, 0, r);
    }
    // Runner 0 takes the one job at 10 s; runners 1-3 are idle since they joined at 0.
    submit(&mut s, 10_000, 0);
    assert_eq!(s.runner_jobs(RunnerId(0)).map(<[JobId]>::len), Some(1));
    let checked = autoscale(ScalePolicy::Reactive, vec![scaling(1, 10, 60_000)])
        .check(&config)
        .expect("valid");
    let mut a = Autoscaler::new(checked, None);
    // Desired 1 (the running job), 4 there: 3 surplus, but none idle 60 s yet.
    let d = &a.evaluate(59_999, &s, &[0])[0];
    assert_eq!((d.current, d.desired), (4, 1));
    assert!(d.release.is_empty());
    // At 60 s the three idle ones may go, longest idle first (ties by id).
    let d = &a.evaluate(60_000, &s, &[0])[0];
    assert_eq!(d.release, vec![RunnerId(1), RunnerId(2), RunnerId(3)]);
    // The job ends at 100 s: runner 0 is idle from then on, and the floor of 1 keeps one.
    s.handle(100_000, Event::Finish { job: JobId(0) }, &mut Vec::new())
        .expect("finish");
    for r in 1..4 {
        s.handle(
            100_000,
            Event::RunnerLost {
                runner: RunnerId(r),
            },
            &mut Vec::new(),
        )
        .expect("release");
    }
    let d = &a.evaluate(1_000_000, &s, &[0])[0];
    assert_eq!((d.current, d.desired), (1, 1));
    assert!(d.release.is_empty());
}

#[test]
fn warm_pool_follows_the_time_of_day() {
    let (mut s, config) = one_pool();
    join(&mut s, 0, 0);
    submit(&mut s, 0, 0);
    let mut rules = scaling(0, 10, 60_000);
    rules.warm_pool = vec![
        WarmWindow {
            from_s: 8 * 3600,
            to_s: 18 * 3600,
            idle: 2,
        },
        // Past midnight: 22:00 to 06:00.
        WarmWindow {
            from_s: 22 * 3600,
            to_s: 6 * 3600,
            idle: 1,
        },
    ];
    let checked = autoscale(ScalePolicy::Reactive, vec![rules])
        .check(&config)
        .expect("valid");
    let mut a = Autoscaler::new(checked, None);
    // 09:00: 1 busy + 2 idle; 20:00: only the busy one; 23:00 and 05:00 (next day): 1 + 1;
    // 12:00 and 20:00 the next day as the first.
    for (hour, desired) in [(9, 3), (20, 1), (23, 2), (29, 2), (36, 3), (44, 1)] {
        let d = &a.evaluate(hour * HOUR, &s, &[0])[0];
        assert_eq!(d.desired, desired, "at hour {hour}: {}", d.reason);
    }
    // The epoch shifts the clock: driver time 0 is 08:00 UTC.
    let checked = AutoscaleConfig {
        epoch_ms: 8 * HOUR,
        ..autoscale(
            ScalePolicy::Reactive,
            vec![PoolScaling {
                warm_pool: vec![WarmWindow {
                    from_s: 8 * 3600,
                    to_s: 9 * 3600,
                    idle: 4,
                }],
                ..scaling(0, 10, 0)
            }],
        )
    }
    .check(&config)
    .expect("valid");
    assert_eq!(
        Autoscaler::new(checked, None).evaluate(0, &s, &[0])[0].desired,
        5
    );
}

#[test]
fn scale_to_zero_drops_the_floor_after_a_quiet_idle_timeout() {
    let (mut s, config) = one_pool();
    let rules = PoolScaling {
        scale_to_zero: true,
        ..scaling(2, 10, 60_000)
    };
    let checked = autoscale(ScalePolicy::Reactive, vec![rules])
        .check(&config)
        .expect("valid");
    let mut a = Autoscaler::new(checked, None);
    // Never had work: zero.
    assert_eq!(a.evaluate(0, &s, &[0])[0].desired, 0);
    // A job arrives: the floor of 2 is back.
    submit(&mut s, 1_000, 0);
    a.observe_submit(&s, &job(0, 1_000, 1, 600_000), 1_000);
    assert_eq!(a.evaluate(1_000, &s, &[0])[0].desired, 2);
    join(&mut s, 61_000, 0);
    // Work is seen at 65 s (the job runs); it ends at 70 s. The floor stays until 60 s
    // after the last evaluation that saw work; the runner goes once idle for 60 s.
    assert_eq!(a.evaluate(65_000, &s, &[0])[0].desired, 2);
    s.handle(70_000, Event::Finish { job: JobId(0) }, &mut Vec::new())
        .expect("finish");
    assert_eq!(a.evaluate(124_999, &s, &[0])[0].desired, 2);
    let d = &a.evaluate(125_000, &s, &[0])[0];
    assert_eq!(d.desired, 0, "{}", d.reason);
    assert!(d.release.is_empty(), "idle only 55 s");
    assert_eq!(a.evaluate(130_000, &s, &[0])[0].release, vec![RunnerId(0)]);
}

#[test]
fn static_keeps_its_size() {
    let (s, config) = one_pool();
    let checked = autoscale(
        ScalePolicy::Static,
        vec![PoolScaling {
            runners: 7,
            ..scaling(0, 3, 0)
        }],
    )
    .check(&config)
    .expect("valid");
    let d = &Autoscaler::new(checked, None).evaluate(0, &s, &[5])[0];
    assert_eq!((d.current, d.desired, d.add), (5, 7, 2));
}

/// A predictive autoscaler on one pool whose jobs are all urgent (target 60 s), with a
/// constant forecast of `per_hour` jobs of `run_ms` each.
fn predictive_desired(per_hour: f64, run_ms: Millis, target_scale: f64) -> ScaleDecision {
    let (s, config) = one_pool();
    let checked = AutoscaleConfig {
        predictive: PredictiveSettings {
            target_scale,
            ..PredictiveSettings::default()
        },
        ..autoscale(ScalePolicy::Predictive, vec![scaling(0, 100, 60_000)])
    }
    .check(&config)
    .expect("valid");
    let mut a = Autoscaler::new(checked, Some(Box::new(Constant(per_hour))));
    // One observed job gives the class mix and the run time (its estimate).
    a.observe(PoolId(0), QosId(0), run_ms as f64, 0);
    a.evaluate(0, &s, &[0]).remove(0)
}

#[test]
fn predictive_sizes_by_erlang_c_for_the_class_target() {
    // 6 jobs/h of 10 min: A = 1 runner. No wait allowed at p95: C(c, 1) <= 0.05, so
    // c = 4 (C(3, 1) = 0.091, C(4, 1) = 0.020).
    let d = predictive_desired(6.0, 600_000, 0.0);
    assert_eq!(d.desired, 4, "{}", d.reason);
    assert!(d.reason.contains("load 1.00 runners"), "{}", d.reason);
    // 60 jobs/h of 1 min: A = 1 again, and the urgent target of 60 s is one run time:
    // C(2, 1) e^{-1} = 0.123, C(3, 1) e^{-2} = 0.0123: c = 3.
    let d = predictive_desired(60.0, 60_000, 1.0);
    assert_eq!(d.desired, 3, "{}", d.reason);
    assert_eq!(d.desired, servers_for(1.0, 60_000.0, 60_000.0, 0.05, 100));
    // Nothing forecast, nothing waiting: nothing needed.
    assert_eq!(predictive_desired(0.0, 60_000, 1.0).desired, 0);
}

#[test]
fn predictive_adds_the_waiting_jobs() {
    let (mut s, config) = one_pool();
    for id in 0..3 {
        submit(&mut s, 0, id);
    }
    let checked = autoscale(ScalePolicy::Predictive, vec![scaling(0, 100, 60_000)])
        .check(&config)
        .expect("valid");
    let mut a = Autoscaler::new(checked, Some(Box::new(Constant(0.0))));
    let d = &a.evaluate(0, &s, &[0])[0];
    assert_eq!((d.desired, d.add), (3, 3), "{}", d.reason);
    assert!(d.reason.contains("+3 for 3 waiting slots"), "{}", d.reason);
}

#[test]
fn bad_settings_name_the_field() {
    let config = config(
        PolicyConfig::default(),
        vec![pool("spot", 1, 1), pool("od", 1, 1), pool("small", 0, 1)],
        1,
    );
    let three = |f: &dyn Fn(&mut Vec<PoolScaling>)| {
        let mut pools = vec![scaling(0, 5, 0); 3];
        f(&mut pools);
        autoscale(ScalePolicy::Reactive, pools).check(&config)
    };
    let err = three(&|p| p[1].min_runners = 6).expect_err("min above max");
    assert_eq!(err.field(), "pool[1] (od).min_runners");
    assert!(matches!(
        err,
        AutoscaleError::MinAboveMax { min: 6, max: 5, .. }
    ));
    let err = three(&|p| p[0].idle_timeout_ms = -1).expect_err("negative");
    assert_eq!(err.field(), "pool[0] (spot).idle_timeout_ms");
    let err = three(&|p| {
        p[2].warm_pool = vec![WarmWindow {
            from_s: 0,
            to_s: 3600,
            idle: 9,
        }]
    })
    .expect_err("warm over max");
    assert_eq!(err.field(), "pool[2] (small).warm_pool[0]");
    let spot = |fallback: &str, rate: f64| SpotSettings {
        interruption_rate_per_hour: rate,
        fallback_pool: Some(fallback.to_string()),
    };
    let err = three(&|p| p[0].spot = Some(spot("nowhere", 0.1))).expect_err("unknown");
    assert_eq!(err.field(), "pool[0] (spot).spot.fallback_pool");
    assert!(
        err.to_string().contains("no pool named \"nowhere\""),
        "{err}"
    );
    let err = three(&|p| p[0].spot = Some(spot("od", -0.1))).expect_err("negative rate");
    assert_eq!(
        err.field(),
        "pool[0] (spot).spot.interruption_rate_per_hour"
    );
    // The fallback must run every job of the spot pool: "small" lacks label 1.
    let err = three(&|p| p[0].spot = Some(spot("small", 0.1))).expect_err("wrong labels");
    assert_eq!(err.field(), "pool[0] (spot).spot.fallback_pool");
    let ok = three(&|p| p[0].spot = Some(spot("od", 0.1))).expect("valid spot pool");
    assert_eq!(ok.pools()[0].spot.and_then(|s| s.fallback), Some(PoolId(1)));
    assert!(ok.has_spot());
    let err = ScalePolicy::named("psychic").expect_err("unknown policy");
    assert_eq!(err.field(), "autoscaler.policy");
}

#[test]
fn an_interrupted_job_is_retried_on_the_fallback_pool() {
    let config = config(
        PolicyConfig::default(),
        vec![pool("spot", 0, 1), pool("od", 0, 1)],
        1,
    );
    let mut s = Scheduler::new(config, Box::new(RequestedTime::default()));
    join_all(&mut s, &[(0, 0), (1, 0)]);
    let mut out = Vec::new();
    s.handle(0, Event::Submit(job(0, 0, 1, 60_000)), &mut out)
        .expect("submit");
    let ran_on = s.runner_pool(RunnerId(0));
    assert_eq!(ran_on, Some(PoolId(0)));
    out.clear();
    // Runner 0 is taken away: the job is requeued onto "od" only, so the idle spot runner
    // 1 does not take it; it starts when an "od" runner joins.
    s.interrupt(10_000, RunnerId(0), Some(PoolId(1)), &mut out)
        .expect("interrupt");
    assert_eq!(
        out,
        vec![Decision::Requeue {
            job: JobId(0),
            runner: RunnerId(0)
        }]
    );
    out.clear();
    s.handle(
        20_000,
        Event::RunnerJoined {
            runner: RunnerId(2),
            pool: PoolId(1),
        },
        &mut out,
    )
    .expect("join od");
    assert!(
        matches!(
            out[..],
            [Decision::Start {
                job: JobId(0),
                runner: RunnerId(2),
                ..
            }]
        ),
        "{out:?}"
    );
}

/// A pool of a case: slots per runner, runners, (min, extra above min), idle timeout s,
/// scale to zero, a warm window's idle runners.
type PoolCase = (u32, u32, (u32, u32), i64, bool, u32);

#[derive(Debug, Clone)]
struct Case {
    pools: Vec<PoolCase>,
    /// slots, submit s, run s
    jobs: Vec<(u32, i64, i64)>,
    policy: u8,
    /// When the autoscaler looks, seconds, and runners in flight per pool.
    at: i64,
    in_flight: Vec<u32>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(
            (
                1u32..4,
                0u32..5,
                (0u32..4, 0u32..6),
                0i64..300,
                any::<bool>(),
                0u32..3,
            ),
            1..4,
        ),
        prop::collection::vec((1u32..4, 0i64..600, 1i64..600), 0..30),
        0u8..3,
        0i64..1200,
        prop::collection::vec(0u32..4, 4),
    )
        .prop_map(|(pools, jobs, policy, at, in_flight)| Case {
            pools,
            jobs,
            policy,
            at,
            in_flight,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever the state: the desired count stays within [min, max] (min only while
    /// the pool is awake), releases never take a runner with a job, never one idle
    /// shorter than the idle timeout, and never more than the surplus.
    #[test]
    fn autoscaler_stays_in_bounds_and_never_releases_a_busy_runner(c in case()) {
        let pools: Vec<PoolSpec> = c
            .pools
            .iter()
            .enumerate()
            .map(|(i, p)| pool(&format!("p{i}"), 0, p.0))
            .collect();
        let config = config(PolicyConfig::default(), pools, 1);
        let mut s = Scheduler::new(config.clone(), Box::new(RequestedTime::default()));
        let mut runners = Vec::new();
        for (i, p) in c.pools.iter().enumerate() {
            for _ in 0..p.1 {
                runners.push((runners.len() as u32, i as u16));
            }
        }
        let jobs: Vec<(JobSpec, Millis)> = c
            .jobs
            .iter()
            .enumerate()
            .map(|(i, &(slots, submit, run))| {
                (job(i as u64, submit * 1000, slots, run * 1000), run * 1000)
            })
            .collect();
        let now = c.at * 1000;
        drive_until(&mut s, &runners, &jobs, now);
        let rules: Vec<PoolScaling> = c
            .pools
            .iter()
            .map(|&(_, _, (min, extra), idle_s, zero, warm)| PoolScaling {
                runners: 2,
                min_runners: min,
                max_runners: min + extra,
                idle_timeout_ms: idle_s * 1000,
                warm_pool: vec![WarmWindow { from_s: 0, to_s: 0, idle: warm.min(min + extra) }],
                scale_to_zero: zero,
                spot: None,
            })
            .collect();
        let policy = [ScalePolicy::Static, ScalePolicy::Reactive, ScalePolicy::Predictive]
            [c.policy as usize];
        let checked = autoscale(policy, rules.clone()).check(&config).expect("valid");
        let mut a = Autoscaler::new(checked, Some(Box::new(Constant(30.0))));
        for (spec, _) in jobs.iter().filter(|(j, _)| j.submit_ms <= now) {
            a.observe_submit(&s, spec, spec.submit_ms);
        }
        let in_flight = &c.in_flight[..rules.len()];
        let loads = s.pool_loads();
        for d in a.evaluate(now, &s, in_flight) {
            let i = d.pool.0 as usize;
            let r = &rules[i];
            let load = &loads[i];
            if policy != ScalePolicy::Static {
                prop_assert!(d.desired <= r.max_runners, "{d:?}");
                prop_assert!(d.desired >= r.min_runners || r.scale_to_zero, "{d:?}");
            }
            prop_assert_eq!(d.current, load.runners + in_flight[i]);
            prop_assert_eq!(d.add, d.desired.saturating_sub(d.current));
            prop_assert!(d.release.len() as u32 <= d.current.saturating_sub(d.desired));
            for runner in &d.release {
                prop_assert_eq!(s.runner_jobs(*runner).map(<[JobId]>::len), Some(0));
                prop_assert_eq!(s.runner_pool(*runner), Some(d.pool));
                let since = load.idle.iter().find(|(id, _)| id == runner).map(|x| x.1);
                prop_assert!(since.is_some_and(|t| now - t >= r.idle_timeout_ms));
            }
        }
    }
}
