//! Issue 18, must show 1 to 3: the dashboard in headless Chromium. A real `rustci
//! serve --http-listen` process gets jobs of two tenants and a pipeline; the overview,
//! the queue and the pipeline page are opened over the DevTools protocol (`cdp`) and read
//! from the rendered DOM (the jobs with their predicted starts; the pipeline by stage
//! with its critical path and predicted finish); then a runner completes jobs over gRPC
//! and the open pages change without a reload (a value the test set on the page
//! survives). A tenant's key shows only its jobs in the page. Screenshots at 1280x800 go
//! to a temp dir, or to `RUSTCI_DASHBOARD_SCREENSHOTS=DIR` (how `docs/` got them).
//!
//! The second test fills the queue with 10,000 waiting jobs and prints how long the
//! queue page takes to first render in Chromium (navigation start to the first page of
//! rows drawn, `window.rustciFirstRenderMs`); it asserts only that the page pages.
//!
//! Without Chromium both skip with `SKIPPED:`, unless `RUSTCI_REQUIRE_CHROMIUM=1`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustci_control::pb;
use serde_json::Value;

use crate::cdp::{Browser, Page};
use crate::common::{complete_ok, lease_one};
use crate::dashboard::{
    get_json, queue_out_of_id_order, submit, Server, KEY_A, KEY_B, OPERATOR, RUNNER,
};
use crate::html_report::{check_png, chromium};

const RENDER: Duration = Duration::from_secs(30);

fn browser_or_skip() -> Option<Browser> {
    match chromium() {
        Some(path) => Some(Browser::launch(&path)),
        None => {
            if std::env::var("RUSTCI_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
                panic!("chromium not found and RUSTCI_REQUIRE_CHROMIUM=1");
            }
            let _ = writeln!(std::io::stderr(), "SKIPPED: chromium not found");
            None
        }
    }
}

/// Opens `path` signed in with `key` (the `?token=` sign-in sets the cookie and
/// redirects to `path`), then `path?query` if `query` is not empty, and waits until that
/// page has drawn.
fn open(page: &mut Page, server: &Server, path: &str, query: &str, key: &str) {
    goto(page, &format!("http://{}{path}?token={key}", server.http));
    if !query.is_empty() {
        goto(page, &format!("http://{}{path}?{query}", server.http));
    }
}

/// Navigates to `url` and waits until the new document has drawn (the old one is marked
/// so that its drawing does not count).
fn goto(page: &mut Page, url: &str) {
    page.eval("window.oldDocument = true");
    page.navigate(url);
    page.wait_for(
        &format!("{url} to render"),
        "!window.oldDocument && document.querySelector('main')?.dataset.ready === '1'",
        RENDER,
    );
}

fn shots_dir(tmp: &Path) -> PathBuf {
    std::env::var_os("RUSTCI_DASHBOARD_SCREENSHOTS")
        .map_or_else(|| tmp.to_path_buf(), PathBuf::from)
}

fn shot(page: &mut Page, dir: &Path, name: &str) {
    let path = dir.join(format!("dashboard-{name}.png"));
    page.screenshot(&path);
    let decoder = png::Decoder::new(std::fs::File::open(&path).expect("png"));
    let info = decoder.read_info().expect("png header");
    assert_eq!(
        (info.info().width, info.info().height),
        (1280, 800),
        "{name}"
    );
    check_png(&path, 2);
}

fn pipeline_job(name: &str, stage_index: u32, needs: Option<&[&str]>) -> pb::PipelineJobSpec {
    pb::PipelineJobSpec {
        name: name.into(),
        stage: ["build", "test", "deploy"][stage_index as usize].into(),
        stage_index,
        needs: needs.map(|n| pb::Needs {
            names: n.iter().map(|s| s.to_string()).collect(),
        }),
        labels: vec!["linux".into()],
        command: format!("make {name}"),
        requested_ms: 120_000,
        ..pb::PipelineJobSpec::default()
    }
}

/// Leases the next job to runner `r0` and completes it; returns its name.
async fn run_one(server: &Server) -> String {
    let mut run = server.clients(RUNNER).runners;
    let lease = lease_one(&mut run, "r0").await;
    complete_ok(&mut run, "r0", &lease).await;
    lease.job.map(|j| j.name).expect("the leased job")
}

/// The queue page's rows: (job, state, tenant, predicted start text).
fn rows(page: &mut Page) -> Vec<(String, String, String, String)> {
    let v = page.eval(
        "[...document.querySelectorAll('#jobs tr[data-job]')].map(r => [r.dataset.job, \
         r.dataset.state, r.children[1].textContent, r.querySelector('.start').textContent])",
    );
    serde_json::from_value(v).expect("rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_jobs_and_pipelines_in_chromium_and_updates_without_reload() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), "dash-browser");
    server
        .clients(RUNNER)
        .runners
        .register_runner(pb::RegisterRunnerRequest {
            runner_id: "r0".into(),
            pool: "lin".into(),
            labels: vec!["linux".into()],
            slots: 1,
        })
        .await
        .expect("register");
    let pipeline = server
        .clients(KEY_A)
        .pipelines
        .submit_pipeline(pb::SubmitPipelineRequest {
            request_id: "p1".into(),
            project: "shop".into(),
            git_ref: "main".into(),
            jobs: vec![
                pipeline_job("compile", 0, None),
                pipeline_job("unit", 1, Some(&["compile"])),
                pipeline_job("lint", 1, Some(&[])),
                pipeline_job("ship", 2, None),
            ],
            ..Default::default()
        })
        .await
        .expect("pipeline")
        .into_inner();
    let jobs_a = submit(&server, KEY_A, 4, "a").await;
    let jobs_b = submit(&server, KEY_B, 2, "b").await;

    let mut page = browser.page();
    let shots = shots_dir(dir.path());
    std::fs::create_dir_all(&shots).expect("screenshots dir");

    // Overview: the pool with its runner and the autoscaler's advice.
    open(&mut page, &server, "/", "", OPERATOR);
    let pool = page.eval("document.querySelector('tr[data-pool=\"lin\"]')?.textContent");
    assert!(pool.as_str().is_some_and(|t| t.contains("lin")), "{pool}");
    shot(&mut page, &shots, "overview");

    // The waiting jobs in the order the scheduler will visit them, each with its place:
    // the screenshot of the queue.
    open(&mut page, &server, "/queue", "", OPERATOR);
    let places = page.eval(
        "[...document.querySelectorAll('#jobs tr[data-job]')].filter(r => r.dataset.position !== '').length",
    );
    assert!(
        places.as_u64().is_some_and(|n| n > 0),
        "no job with a place: {places}"
    );
    shot(&mut page, &shots, "queue");

    // The queue (every state, so that the job a runner takes stays on the page): every
    // waiting job, each with a predicted start.
    open(&mut page, &server, "/queue", "state=any", OPERATOR);
    let shown = rows(&mut page);
    for j in jobs_a.iter().chain(&jobs_b) {
        let row = shown
            .iter()
            .find(|r| r.0 == *j)
            .unwrap_or_else(|| panic!("{j} not on the queue page: {shown:?}"));
        assert_eq!(row.1, "QUEUED");
        assert!(
            row.3.starts_with("now") || row.3.starts_with("in "),
            "{j} shows no predicted start: {row:?}"
        );
    }

    // A runner completes a job: its row changes on the open page, which never reloads.
    page.eval("window.sameDocument = 'yes'");
    let done = run_one(&server).await;
    page.wait_for(
        &format!("{done} to show SUCCEEDED"),
        &format!(
            "document.querySelector('tr[data-job=\"{done}\"]')?.dataset.state === 'SUCCEEDED' \
             && window.sameDocument === 'yes'"
        ),
        RENDER,
    );

    // The pipeline page: stages in order, the critical path and the predicted finish.
    let id = pipeline.name.trim_start_matches("pipelines/").to_string();
    let path = format!("/pipelines/{id}");
    open(&mut page, &server, &path, "", OPERATOR);
    let stages = page.eval("[...document.querySelectorAll('.stage')].map(s => s.dataset.stage)");
    assert_eq!(stages, serde_json::json!(["build", "test", "deploy"]));
    let cards = page.eval("document.querySelectorAll('.job[data-job]').length");
    assert_eq!(cards, 4);
    let critical = page.eval("document.getElementById('critical').textContent");
    assert!(
        critical.as_str().is_some_and(|t| t.contains("ship")),
        "{critical}"
    );
    let finish = page.eval("document.getElementById('finish').textContent");
    assert!(
        finish
            .as_str()
            .is_some_and(|t| t.contains("predicted finish") && !t.starts_with('-')),
        "{finish}"
    );
    assert!(
        page.eval("document.querySelectorAll('.job.cp').length")
            .as_u64()
            >= Some(1)
    );
    shot(&mut page, &shots, "pipeline");

    // Run jobs until the pipeline's first job is done: its card changes in place.
    page.eval("window.sameDocument = 'yes'");
    let compile = pipeline
        .jobs
        .iter()
        .find(|j| j.name == "compile")
        .map(|j| j.job.clone())
        .expect("compile");
    let mut ran = vec![done];
    while !ran.contains(&compile) {
        assert!(ran.len() < 10, "compile never ran: {ran:?}");
        ran.push(run_one(&server).await);
    }
    page.wait_for(
        "the compile card to show SUCCEEDED",
        &format!(
            "document.querySelector('.job[data-job=\"{compile}\"]')?.dataset.state === 'SUCCEEDED' \
             && window.sameDocument === 'yes'"
        ),
        RENDER,
    );

    // Team B's key shows team B's jobs only, in the page as in the API.
    open(&mut page, &server, "/queue", "state=any", KEY_B);
    let theirs = rows(&mut page);
    assert!(!theirs.is_empty());
    assert!(theirs.iter().all(|r| r.2 == "team-b"), "{theirs:?}");
    let pipelines =
        page.eval("fetch('/api/v1/pipelines').then(r => r.json()).then(j => j.pipelines.length)");
    assert_eq!(pipelines, 0);

    // What the page weighs, every asset included, as Chromium decoded it.
    let weight: Value = page.eval(
        "performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')) \
         .filter(e => !e.name.includes('/api/')).reduce((a, e) => a + e.decodedBodySize, 0)",
    );
    let weight = weight.as_u64().expect("bytes");
    assert!(weight > 1000 && weight < 300 * 1024, "{weight} bytes");
    let _ = writeln!(
        std::io::stderr(),
        "MEASURED: the dashboard page with every asset: {weight} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_page_shows_waiting_jobs_in_visit_order_with_their_places() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, order) = queue_out_of_id_order(dir.path(), "dash-queue-page").await;
    let mut page = browser.page();
    open(&mut page, &server, "/queue", "", OPERATOR);
    let shown: Vec<String> = rows(&mut page).into_iter().map(|r| r.0).collect();
    assert_eq!(shown, order);
    let places = page
        .eval("[...document.querySelectorAll('#jobs tr[data-job]')].map(r => r.dataset.position)");
    assert_eq!(places, serde_json::json!(["0", "1", "2", "3", ""]));

    // The runner ends `busy`: the first waiting job starts and leaves the page, and each
    // other moves up one place, without a reload.
    page.eval("window.sameDocument = 'yes'");
    run_one(&server).await;
    let places = ["0", "1", "2", ""];
    let want: Vec<String> = order[1..]
        .iter()
        .zip(places)
        .map(|(job, place)| format!("{job}@{place}"))
        .collect();
    page.wait_for(
        "the started job to leave the queue page",
        &format!(
            "[...document.querySelectorAll('#jobs tr[data-job]')] \
             .map(r => r.dataset.job + '@' + r.dataset.position).join(',') === '{}' \
             && window.sameDocument === 'yes'",
            want.join(",")
        ),
        RENDER,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_each_pool_and_qos_class_and_a_0_ms_wait_as_0ms() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    // `busy` was leased in the pass that admitted it: one start, waited 0 ms.
    let (server, _) = queue_out_of_id_order(dir.path(), "dash-zero-wait").await;
    let pools = get_json(server.http, "/api/v1/pools", OPERATOR);
    let lin = pools["pools"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["pool"] == "lin"))
        .expect("pool lin")
        .clone();
    assert_eq!(lin["stats"]["started_last_hour"], 1, "{lin}");
    assert_eq!(lin["stats"]["wait_p50_ms"], 0, "{lin}");
    let mut page = browser.page();
    open(&mut page, &server, "/", "", OPERATOR);
    let cells = page.eval(
        "[...document.querySelectorAll('#pools tr[data-pool=\"lin\"] .p50, #pools tr[data-pool=\"lin\"] .p95, #pools tr[data-pool=\"lin\"] .busy')] \
         .map(c => c.textContent)",
    );
    assert_eq!(cells, serde_json::json!(["0ms", "0ms", "1 / 0"]));

    // Per pool and QoS class: every configured class has a row; the class of `busy`
    // (the one start) shows its 0 ms against its target, the others no start.
    let classes = lin["classes"].as_array().expect("classes").clone();
    let started: Vec<&Value> = classes
        .iter()
        .filter(|c| c["stats"]["started_last_hour"] == 1)
        .collect();
    assert_eq!(started.len(), 1, "{lin}");
    assert_eq!(started[0]["p95_within_target"], true, "{lin}");
    let queued: u64 = classes
        .iter()
        .map(|c| c["stats"]["queued"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(Value::from(queued), lin["stats"]["queued"], "{lin}");
    let shown = page.eval(
        "[...document.querySelectorAll('#classes tr[data-pool=\"lin\"]')] \
         .map(r => [r.dataset.qos, r.querySelector('.p95').textContent, \
                    r.querySelector('.met').textContent])",
    );
    let want: Vec<Value> = classes
        .iter()
        .map(|c| {
            let (p95, met) = if c["stats"]["started_last_hour"] == 1 {
                ("0ms", "within target")
            } else {
                ("-", "no start")
            };
            serde_json::json!([c["qos"], p95, met])
        })
        .collect();
    assert_eq!(shown, Value::Array(want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_page_pages_10000_waiting_jobs() {
    let Some(browser) = browser_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), "dash-10k");
    let mut jobs = server.clients(KEY_A).jobs;
    for batch in 0..10 {
        let requests = (0..1000)
            .map(|i| pb::SubmitJobRequest {
                request_id: format!("w-{batch}-{i}"),
                labels: vec!["linux".into()],
                slots: 1,
                command: "true".into(),
                job_name: format!("w-{batch}-{i}"),
                requested_ms: 60_000,
                ..Default::default()
            })
            .collect();
        jobs.submit_jobs(pb::SubmitJobsRequest { requests })
            .await
            .expect("submit a batch");
    }
    let mut page = browser.page();
    open(&mut page, &server, "/queue", "", OPERATOR);
    // A fresh navigation, signed in already: what a person opening the page waits.
    goto(&mut page, &format!("http://{}/queue", server.http));
    let first_render = page
        .eval("window.rustciFirstRenderMs")
        .as_f64()
        .expect("ms");
    assert_eq!(
        page.eval("document.querySelectorAll('#jobs tr[data-job]').length"),
        100
    );
    let first = rows(&mut page)[0].0.clone();
    page.eval("document.querySelectorAll('.pager button')[1].click()");
    page.wait_for(
        "the second page",
        &format!(
            "document.querySelector('#jobs tr[data-job]')?.dataset.job !== {first:?} \
             && document.querySelectorAll('#jobs tr[data-job]').length === 100"
        ),
        RENDER,
    );
    let _ = writeln!(
        std::io::stderr(),
        "MEASURED: queue page with 10000 waiting jobs: first render {first_render:.0} ms after navigation start (Chromium, performance.now())"
    );
}
