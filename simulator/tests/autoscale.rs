//! The three autoscalers on one synthetic CI day (a second each): the relations the
//! README's table shows at full size (predictive: the static peak fleet's p95 waits at far
//! fewer runner-hours; no more cost and no worse standard p95 than reactive), and what
//! every autoscaled run must respect: runners join only after their provisioning delay,
//! no job runs on a runner outside its paid life (scale-in never takes a running job's
//! runner), cost = runner-hours x price; spot interruptions retry jobs on the fallback.

use rustci_datasets::synthetic::{generate, SyntheticConfig};
use rustci_datasets::JobRecord;
use rustci_scheduler::{ScalePolicy, Tsafrir};
use rustci_sim::fleet_file::FleetFile;
use rustci_sim::outcome::ScalingFacts;
use rustci_sim::report::Report;
use rustci_sim::simulate::{peak_runners, simulate, RunOutput, RunSpec};

const DAY_START_UNIX: i64 = 1_704_067_200;

fn day() -> Vec<JobRecord> {
    generate(&SyntheticConfig {
        days: 1.0,
        seed: 1,
        start_unix: DAY_START_UNIX,
        ..SyntheticConfig::default()
    })
    .expect("synthetic day")
}

fn fleet(text_extra: &str) -> FleetFile {
    let mut f = FleetFile::parse(
        &format!(
            "{}\n{text_extra}",
            include_str!("../fleets/autoscale-ci.toml")
        ),
        "autoscale-ci.toml",
    )
    .expect("fleet");
    f.set_provisioning_delay(60.0);
    f
}

fn run(records: &[JobRecord], fleet: &FleetFile, policy: ScalePolicy) -> (RunOutput, Report) {
    let out = simulate(RunSpec {
        predictor: Box::new(Tsafrir::new(3_600_000)),
        autoscaler: Some(policy),
        epoch_unix_s: DAY_START_UNIX,
        ..RunSpec::new(records, fleet, "qos").expect("policy")
    })
    .expect("simulate");
    let report = Report::from_run(&out.facts, out.scaling.as_ref());
    (out, report)
}

fn p95(r: &Report, class: &str) -> f64 {
    r.qos[class].wait_p95_s.expect("jobs in class")
}

/// Every autoscaled run: lives, delays, no job outside its runner's life, cost.
fn check_lives(out: &RunOutput, report: &Report, fleet: &FleetFile) {
    let sc: &ScalingFacts = out.scaling.as_ref().expect("scaling facts");
    let start = out.facts.sim_start_s;
    for (id, life) in sc.runners.iter().enumerate() {
        if life.released_s.is_some_and(|t| t <= life.requested_s) {
            continue;
        }
        let delay = fleet.pools[life.pool].provisioning_delay_s;
        if life.requested_s > start {
            if let Some(ready) = life.ready_s {
                assert_eq!(ready - life.requested_s, delay, "runner {id} joined early");
            }
        }
    }
    for r in &out.facts.results {
        let life = &sc.runners[r.runner as usize];
        let ready = life.ready_s.expect("a runner that ran a job was ready");
        assert!(
            r.start_s >= ready,
            "job {} started before its runner was ready",
            r.id
        );
        assert!(
            life.released_s.is_none_or(|t| t >= r.end_s),
            "runner {} went at {:?} under job {} (ends {})",
            r.runner,
            life.released_s,
            r.id,
            r.end_s
        );
        assert_eq!(r.pool, fleet.pools[life.pool].name);
    }
    let a = report.autoscaler.as_ref().expect("autoscaler report");
    let mut total = 0.0;
    for p in &fleet.pools {
        let pr = &a.pools[&p.name];
        assert!((pr.cost - pr.runner_hours * p.cost_per_hour).abs() < 1e-9);
        total += pr.cost;
    }
    assert!(
        (report.cost - total).abs() < 1e-6,
        "{} vs {total}",
        report.cost
    );
    assert_eq!(a.never_started, 0);
    assert_eq!(report.jobs as usize, out.prepared.jobs.len());
}

#[test]
fn three_policies_on_a_synthetic_day() {
    let records = day();
    let base = fleet("");
    let mut peak = base.clone();
    for (p, n) in peak
        .pools
        .iter_mut()
        .zip(peak_runners(&records, &base, 1.0))
    {
        p.runners = n.max(1);
    }
    let (s_out, stat) = run(&records, &peak, ScalePolicy::Static);
    check_lives(&s_out, &stat, &peak);
    // The static policy's runner-hours are the plain static fleet's.
    let plain = Report::from_facts(&s_out.facts);
    assert!((plain.runner_hours - stat.runner_hours).abs() < 1e-6);

    let mut reactive = base.clone();
    reactive.set_idle_timeout(600.0);
    let (r_out, react) = run(&records, &reactive, ScalePolicy::Reactive);
    check_lives(&r_out, &react, &reactive);

    let mut predictive = fleet("");
    predictive.set_idle_timeout(180.0);
    predictive
        .autoscaler
        .get_or_insert_with(Default::default)
        .target_scale = 0.05;
    let (p_out, pred) = run(&records, &predictive, ScalePolicy::Predictive);
    check_lives(&p_out, &pred, &predictive);

    eprintln!(
        "static {:.0} rh / {:.0}, reactive {:.0} rh / {:.0}, predictive {:.0} rh / {:.0}",
        stat.runner_hours, stat.cost, react.runner_hours, react.cost, pred.runner_hours, pred.cost
    );
    for class in ["urgent", "standard", "batch"] {
        eprintln!(
            "{class}: p95 static {} reactive {} predictive {}",
            p95(&stat, class),
            p95(&react, class),
            p95(&pred, class)
        );
        // The static peak fleet's waits (none at p95)...
        assert!(p95(&pred, class) <= p95(&stat, class), "{class}");
    }
    // ... at less than 70% of its runner-hours (about half on this day).
    assert!(pred.runner_hours <= 0.7 * stat.runner_hours);
    // Reactive with a 10 min idle timeout waits no less for standard jobs; on this one
    // day both reach p95 0 s and the costs are within 1% of each other (predictive 0.2%
    // above since it keeps busy runners under its backlog; the week in the README
    // separates them, predictive 0.5% cheaper with a lower standard p95).
    assert!(p95(&pred, "standard") <= p95(&react, "standard"));
    assert!(
        pred.cost <= 1.01 * react.cost,
        "{} > 1.01 x {}",
        pred.cost,
        react.cost
    );
    // The autoscalers did scale: runners came and went.
    for r in [&react, &pred] {
        let a = r.autoscaler.as_ref().expect("report");
        assert!(a.runners_released > 0 && a.runners_requested > a.runners_released / 2);
    }
}

#[test]
fn spot_interruptions_are_retried_on_the_fallback_pool() {
    let records = generate(&SyntheticConfig {
        days: 0.25,
        seed: 3,
        start_unix: DAY_START_UNIX,
        ..SyntheticConfig::default()
    })
    .expect("synthetic");
    // The first pool ("linux") becomes a spot pool at 0.03 with an on-demand fallback at
    // 0.10, appended as the last pool.
    let text = include_str!("../fleets/autoscale-ci.toml").replacen(
        "cost_per_hour = 0.10\n",
        "cost_per_hour = 0.03\nspot = { interruption_rate_per_hour = 2.0, fallback_pool = \"linux-od\" }\n",
        1,
    ) + "\n[[pool]]\nname = \"linux-od\"\nlabels = [\"linux\", \"docker\"]\nrunners = 1\ncost_per_hour = 0.10\n";
    let mut f = FleetFile::parse(&text, "spot.toml").expect("spot fleet");
    f.set_provisioning_delay(60.0);
    let (out, report) = run(&records, &f, ScalePolicy::Reactive);
    check_lives(&out, &report, &f);
    let a = report.autoscaler.as_ref().expect("report");
    let linux = &a.pools["linux"];
    eprintln!(
        "interruptions {} retried {} s fallback {} saved {:?}",
        a.interruptions, a.retried_work_s, a.requeued_to_fallback, a.spot_saved
    );
    // Interruptions at 2 per runner-hour: about twice the pool's runner-hours.
    let expected = 2.0 * linux.runner_hours;
    assert!(
        (a.interruptions as f64 - expected).abs() < 0.25 * expected + 5.0,
        "{} interruptions for {:.1} runner-hours",
        a.interruptions,
        linux.runner_hours
    );
    assert_eq!(linux.interruptions, a.interruptions);
    assert!(a.requeued_to_fallback > 0 && a.retried_work_s > 0.0);
    // Retried jobs ran on the on-demand pool.
    assert!(report.pools["linux-od"].jobs >= a.requeued_to_fallback);
    // Saved: spot runner-hours at (0.10 - 0.03), less the retried work at 0.10.
    let saved = linux.runner_hours * (0.10 - 0.03) - a.retried_work_s / 3600.0 * 0.10;
    assert!((a.spot_saved.expect("saved") - saved).abs() < 1e-6);
    // The same seed gives the same interruptions.
    let (_, again) = run(&records, &f, ScalePolicy::Reactive);
    assert_eq!(
        again.autoscaler.as_ref().map(|a| a.interruptions),
        Some(a.interruptions)
    );
}

#[test]
fn without_an_autoscaler_nothing_changes() {
    let records = generate(&SyntheticConfig {
        days: 0.25,
        ..SyntheticConfig::default()
    })
    .expect("synthetic");
    let f = FleetFile::default_ci().expect("fleet");
    let plain = simulate(RunSpec::new(&records, &f, "easy").expect("policy")).expect("run");
    let stat = simulate(RunSpec {
        autoscaler: Some(ScalePolicy::Static),
        ..RunSpec::new(&records, &f, "easy").expect("policy")
    })
    .expect("run");
    assert!(plain.scaling.is_none());
    assert_eq!(plain.engine.placements, stat.engine.placements);
    let (a, b) = (
        Report::from_facts(&plain.facts),
        Report::from_run(&stat.facts, stat.scaling.as_ref()),
    );
    assert!((a.runner_hours - b.runner_hours).abs() < 1e-6);
    assert!((a.cost - b.cost).abs() < 1e-6);
    assert!(a.autoscaler.is_none() && b.autoscaler.is_some());
}

#[test]
fn bad_autoscaling_settings_name_the_field() {
    // Pool "a" (label x) with the extra settings, pool "b" (label y).
    let pool = |extra: &str| {
        format!(
            "[[pool]]\nname = \"a\"\nlabels = [\"x\"]\nrunners = 1\n{extra}\n\
             [[pool]]\nname = \"b\"\nlabels = [\"y\"]\nrunners = 1\n"
        )
    };
    let cases = [
        (
            pool("min_runners = 5\nmax_runners = 2"),
            "pool[0] (a).min_runners",
        ),
        (pool("idle_timeout_s = -1"), "pool[0] (a).idle_timeout_s"),
        (
            pool("spot = { interruption_rate_per_hour = 0.1, fallback_pool = \"nope\" }"),
            "pool[0] (a).spot.fallback_pool",
        ),
        (
            pool("spot = { interruption_rate_per_hour = 0.1, fallback_pool = \"b\" }"),
            "pool[0] (a).spot.fallback_pool",
        ),
        (
            pool("spot = { interruption_rate_per_hour = -1.0 }"),
            "pool[0] (a).spot.interruption_rate_per_hour",
        ),
        (
            pool("max_runners = 3\nwarm_pool = [{ from = \"08:00\", to = \"18:00\", idle = 4 }]"),
            "pool[0] (a).warm_pool[0]",
        ),
        (
            pool("warm_pool = [{ from = \"8am\", to = \"18:00\", idle = 1 }]"),
            "pool[0] (a).warm_pool[0].from",
        ),
        (
            format!("[autoscaler]\ninterval_s = 0\n{}", pool("")),
            "autoscaler.interval_s",
        ),
        (
            format!("[autoscaler]\npolicy = \"magic\"\n{}", pool("")),
            "autoscaler.policy",
        ),
    ];
    for (text, field) in cases {
        let err = FleetFile::parse(&text, "bad.toml").expect_err(field);
        let msg = err.to_string();
        assert!(
            msg.contains(field) && msg.contains("bad.toml"),
            "{field}: {msg}"
        );
    }
}

#[test]
fn cli_reports_runner_hours_and_class_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("report.json");
    let fleet = concat!(env!("CARGO_MANIFEST_DIR"), "/fleets/autoscale-ci.toml");
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_rustci-sim"))
            .args(["run", "--days", "0.05", "--fleet", fleet, "-q"])
            .args(extra)
            .output()
            .expect("run rustci-sim")
    };
    let o = run(&[
        "--autoscaler",
        "predictive",
        "--output",
        out.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("report")).expect("JSON");
    assert!(r["runner_hours"].as_f64().expect("runner_hours") > 0.0);
    for class in ["urgent", "standard", "batch"] {
        assert!(r["qos"][class]["wait_p95_s"].is_number(), "{class}");
        let within = r["qos"][class]["within_target"].as_f64().expect("share");
        assert!((0.0..=1.0).contains(&within));
    }
    assert_eq!(r["autoscaler"]["policy"], "predictive");
    assert_eq!(r["autoscaler"]["forecast"], "online-arrivals");
    // --peak-sized is for the static policy only.
    let o = run(&["--autoscaler", "reactive", "--peak-sized"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--peak-sized"));
}
