//! Issue 18: the dashboard over HTTP (`rustci serve --http-listen`), driven as its users
//! drive it: a real `rustci serve` process, plain HTTP/1.1 over real sockets. The JSON
//! API has the CLI's field names and `ListJobs`' paging, refuses bad input with a 400
//! naming the parameter, a wrong key with a 401 and another tenant's job with a 403
//! (gRPC's PERMISSION_DENIED: the services' own check); a tenant's key sees only its
//! own jobs in the API and through the page's cookie; the live stream resumes from its
//! revision after the server restarts. The browser half is `dashboard_browser`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rustci_control::clients::client::connect_lazy;
use rustci_control::pb;
use serde_json::Value;

use crate::common::{free_port, rustci, rustci_json, tail, write_private, Procs, BIN};

/// The auth file of these tests: two tenants (team-b with three times team-a's fair-share
/// weight), an operator and a runner.
pub const AUTH: &str = r#"
runner_tokens = ["runner-token-1"]
operator_tokens = ["operator-token-1"]

[[tenant]]
name = "team-a"
api_keys = ["key-team-a-1"]

[[tenant]]
name = "team-b"
api_keys = ["key-team-b-1"]
weight = 3.0
"#;
pub const OPERATOR: &str = "operator-token-1";
pub const KEY_A: &str = "key-team-a-1";
pub const KEY_B: &str = "key-team-b-1";
pub const RUNNER: &str = "runner-token-1";

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// One HTTP/1.1 request (`Connection: close`), read to its end.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    // Read the head, then the body by its length (a keep-alive peer such as
    // Chromium's DevTools endpoint does not close), by chunks, or to the end.
    let mut reader = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("read the answer") == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head}"));
    let lower = head.to_ascii_lowercase();
    let length = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let mut raw = Vec::new();
    match length {
        Some(n) => {
            raw.resize(n, 0);
            reader.read_exact(&mut raw).expect("read the body");
        }
        None => {
            reader.read_to_end(&mut raw).expect("read the body");
        }
    }
    let body = String::from_utf8_lossy(&raw).to_string();
    let body = if lower.contains("transfer-encoding: chunked") {
        unchunk(&body)
    } else {
        body
    };
    Answer {
        status,
        headers: head,
        body,
    }
}

fn unchunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n.min(rest.len())]);
        s = rest.get(n + 2..).unwrap_or("");
    }
    out
}

/// `GET path` with `Authorization: Bearer key`.
pub fn get(addr: SocketAddr, path: &str, key: &str) -> Answer {
    request(
        addr,
        "GET",
        path,
        &[("Authorization", &format!("Bearer {key}"))],
    )
}

/// `GET path` as `key`, which must answer 200 with JSON.
pub fn get_json(addr: SocketAddr, path: &str, key: &str) -> Value {
    let a = get(addr, path, key);
    assert_eq!(a.status, 200, "GET {path}: {}", a.body);
    a.json()
}

/// The 400 `a` must be, naming `parameter`.
#[track_caller]
fn expect_400(a: &Answer, parameter: &str) {
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["error"]["parameter"], parameter, "{}", a.body);
    assert!(a.json()["error"]["message"]
        .as_str()
        .is_some_and(|m| m.starts_with(parameter)));
}

/// A `rustci serve` process with `--auth AUTH` and `--http-listen`, and its addresses.
pub struct Server {
    pub procs: Procs,
    pub grpc: String,
    pub http: SocketAddr,
    pub log: std::path::PathBuf,
    grpc_port: u16,
    extra: Vec<String>,
}

impl Server {
    /// Starts one in `dir` (data in `dir/data`), ready when the API answers.
    pub fn start(dir: &Path, name: &str) -> Self {
        Self::start_with(dir, name, &[])
    }

    /// As [`Server::start`], with more `rustci serve` arguments.
    pub fn start_with(dir: &Path, name: &str, extra: &[&str]) -> Self {
        let grpc_port = free_port();
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let mut s = Self {
            procs: Procs::new(),
            grpc: format!("http://127.0.0.1:{grpc_port}"),
            http,
            log: dir.join(format!("{name}.log")),
            grpc_port,
            extra: extra.iter().map(|a| a.to_string()).collect(),
        };
        s.spawn(dir, name);
        s
    }

    /// (Re)starts the process on the same ports and data.
    pub fn spawn(&mut self, dir: &Path, name: &str) {
        let auth = dir.join("auth.toml");
        write_private(&auth, AUTH);
        let http = self.http.to_string();
        let mut args = vec![
            "--auth",
            auth.to_str().expect("utf-8 path"),
            "--http-listen",
            &http,
        ];
        args.extend(self.extra.iter().map(String::as_str));
        self.procs
            .server(name, self.grpc_port, &dir.join("data"), &args, &self.log);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(self.http).is_ok()
                && get(self.http, "/api/v1/fleet", OPERATOR).status == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the dashboard did not answer within 60 s: {}",
                tail(&self.log, 30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn clients(&self, key: &str) -> rustci_control::clients::client::Clients {
        connect_lazy(&self.grpc, Some(key), None).expect("client")
    }
}

/// Submits `n` jobs for `key`'s tenant (label `linux`), returns their names.
pub async fn submit(server: &Server, key: &str, n: usize, prefix: &str) -> Vec<String> {
    let mut jobs = server.clients(key).jobs;
    let mut names = Vec::new();
    for i in 0..n {
        let j = jobs
            .submit_job(pb::SubmitJobRequest {
                request_id: format!("{prefix}-{i}"),
                labels: vec!["linux".into()],
                slots: 1,
                command: format!("echo {prefix} {i}"),
                job_name: format!("{prefix}-{i}"),
                requested_ms: 60_000,
                ..Default::default()
            })
            .await
            .expect("submit")
            .into_inner();
        names.push(j.name);
    }
    names
}

/// Every job `route` (`/api/v1/jobs` or `/api/v1/queue`) lists for `key` with `query`,
/// following the page tokens; and the number of pages.
fn all_pages(addr: SocketAddr, key: &str, route: &str, query: &str) -> (Vec<Value>, usize) {
    let mut jobs = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = get_json(addr, &format!("{route}?{query}&page_token={token}"), key);
        pages += 1;
        jobs.extend(page["jobs"].as_array().expect("jobs").iter().cloned());
        token = page["next_page_token"].as_str().expect("token").to_string();
        if token.is_empty() {
            return (jobs, pages);
        }
        assert!(pages < 100, "paging does not end");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_has_the_cli_fields_and_paging_and_refuses_bad_input_and_other_tenants() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), "dash-api");
    let a = server.http;
    let jobs_a = submit(&server, KEY_A, 5, "a").await;
    let jobs_b = submit(&server, KEY_B, 2, "b").await;

    // The same jobs with the same field names and values as the CLI's JSON.
    let cli = rustci_json(&[
        "jobs",
        "list",
        "--server",
        &server.grpc,
        "--api-key",
        OPERATOR,
        "--format",
        "json",
    ]);
    let api = get_json(a, "/api/v1/jobs", OPERATOR);
    let cli = cli.as_array().expect("array");
    let listed = api["jobs"].as_array().expect("jobs");
    assert_eq!(listed.len(), 7);
    assert_eq!(cli.len(), 7);
    for (c, h) in cli.iter().zip(listed) {
        let ck: Vec<&String> = c.as_object().expect("object").keys().collect();
        let hk: Vec<&String> = h.as_object().expect("object").keys().collect();
        assert_eq!(
            ck, hk,
            "field names differ from `rustci jobs list --format json`"
        );
        for field in [
            "name",
            "tenant",
            "state",
            "command",
            "submit_ms",
            "labels",
            "predicted_run_ms",
        ] {
            assert_eq!(c[field], h[field], "{field}");
        }
    }

    // Paging: pages of 2 cover every job once, in order.
    let (paged, pages) = all_pages(a, OPERATOR, "/api/v1/jobs", "page_size=2");
    assert_eq!(pages, 4);
    let names: Vec<&str> = paged
        .iter()
        .map(|j| j["name"].as_str().expect("name"))
        .collect();
    let mut want: Vec<&str> = jobs_a.iter().chain(&jobs_b).map(String::as_str).collect();
    want.sort_by_key(|n| n.trim_start_matches("jobs/").parse::<u64>().expect("id"));
    assert_eq!(names, want);
    // Filters: a state and a tenant.
    let (queued, _) = all_pages(a, OPERATOR, "/api/v1/jobs", "state=queued&tenant=team-b");
    assert_eq!(queued.len(), 2);
    assert!(queued
        .iter()
        .all(|j| j["tenant"] == "team-b" && j["state"] == "QUEUED"));

    // Bad input: a 400 naming the parameter.
    expect_400(
        &get(a, "/api/v1/jobs?page_token=abc", OPERATOR),
        "page_token",
    );
    expect_400(&get(a, "/api/v1/jobs?state=sleeping", OPERATOR), "state");
    expect_400(
        &get(a, "/api/v1/jobs?page_size=lots", OPERATOR),
        "page_size",
    );
    expect_400(
        &get(a, "/api/v1/jobs?page_size=100000", OPERATOR),
        "page_size",
    );
    expect_400(&get(a, "/api/v1/jobs?stat=queued", OPERATOR), "stat");
    expect_400(&get(a, "/api/v1/pipelines?state=nope", OPERATOR), "state");
    expect_400(&get(a, "/api/v1/jobs/x12", OPERATOR), "id");
    expect_400(&get(a, "/api/v1/stream?from=yesterday", OPERATOR), "from");
    // Unknown ids and routes: 404.
    assert_eq!(get(a, "/api/v1/jobs/999999", OPERATOR).status, 404);
    assert_eq!(get(a, "/api/v1/pipelines/999999", OPERATOR).status, 404);
    assert_eq!(get(a, "/api/v1/nothing", OPERATOR).status, 404);

    // Keys: none or a wrong one is a 401 on the API and the pages.
    for path in [
        "/api/v1/jobs",
        "/api/v1/runners",
        "/api/v1/stream",
        "/",
        "/queue",
    ] {
        assert_eq!(request(a, "GET", path, &[]).status, 401, "{path}");
        assert_eq!(get(a, path, "not-a-key-at-all").status, 401, "{path}");
    }
    // A runner token reads nothing of the job API.
    assert_eq!(get(a, "/api/v1/jobs", RUNNER).status, 403);

    // A tenant sees its own jobs only; another tenant's job is a 403 (as over gRPC).
    let (mine, _) = all_pages(a, KEY_A, "/api/v1/jobs", "page_size=3");
    assert_eq!(mine.len(), 5);
    assert!(mine.iter().all(|j| j["tenant"] == "team-a"));
    let other = jobs_b[0].trim_start_matches("jobs/");
    assert_eq!(get(a, &format!("/api/v1/jobs/{other}"), KEY_A).status, 403);
    assert_eq!(get(a, "/api/v1/jobs?tenant=team-b", KEY_A).status, 403);
    let stats = get_json(a, "/api/v1/fleet", KEY_A);
    assert!(stats["stats"]["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .all(|t| t["tenant"] == "team-a"));
    let shares = get_json(a, "/api/v1/tenants", KEY_A);
    assert!(shares["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .all(|t| t["tenant"] == "team-a"));
    // The auth file's weights are the core's: team-b 3, team-a (none given) 1.
    let weights: Vec<(Value, Value, Value)> = get_json(a, "/api/v1/tenants", OPERATOR)["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .map(|t| {
            (
                t["tenant"].clone(),
                t["weight"].clone(),
                t["weight_share"].clone(),
            )
        })
        .collect();
    assert_eq!(
        weights,
        [
            (Value::from("team-a"), Value::from(1.0), Value::from(0.25)),
            (Value::from("team-b"), Value::from(3.0), Value::from(0.75)),
        ]
    );

    // One job: its estimates, predicted start and why it waits.
    let own = jobs_a[0].trim_start_matches("jobs/");
    let j = get_json(a, &format!("/api/v1/jobs/{own}"), KEY_A);
    assert_eq!(j["name"], jobs_a[0]);
    assert!(
        j["predicted_run_ms"].as_i64().is_some_and(|ms| ms > 0),
        "{j}"
    );
    assert!(j["predicted_run_upper_ms"].as_i64() >= j["predicted_run_ms"].as_i64());
    assert!(
        j["explanation"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{j}"
    );
    assert!(
        j["explanation"]["message"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{j}"
    );

    // The page: `?token=` signs in with a cookie; the cookie sees the tenant's jobs only.
    let signin = request(a, "GET", &format!("/queue?token={KEY_A}"), &[]);
    assert_eq!(signin.status, 303, "{}", signin.body);
    assert_eq!(signin.header("location").as_deref(), Some("/queue"));
    let cookie = signin.header("set-cookie").expect("set-cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let cookie = cookie.split(';').next().expect("name=value").to_string();
    assert_eq!(
        request(a, "GET", "/queue?token=wrong-key-1", &[]).status,
        401
    );
    // A runner token is a valid key but not the dashboard's: no cookie for it.
    let runner = request(a, "GET", &format!("/queue?token={RUNNER}"), &[]);
    assert_eq!(runner.status, 403, "{}", runner.body);
    assert!(runner.header("set-cookie").is_none());
    let page = request(a, "GET", "/queue", &[("Cookie", &cookie)]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/assets/app.js"));
    let by_cookie = request(a, "GET", "/api/v1/jobs", &[("Cookie", &cookie)]).json();
    let by_cookie = by_cookie["jobs"].as_array().expect("jobs");
    assert_eq!(by_cookie.len(), 5);
    assert!(by_cookie.iter().all(|j| j["tenant"] == "team-a"));

    // Cancel: the cookie needs the CSRF header; another tenant's job is refused as
    // CancelJob refuses it; one's own is cancelled.
    let cancel = |id: &str, csrf: bool| {
        let mut h = vec![("Cookie", cookie.as_str())];
        if csrf {
            h.push(("X-Rustci-Csrf", "1"));
        }
        request(a, "POST", &format!("/api/v1/jobs/{id}/cancel"), &h)
    };
    assert_eq!(cancel(own, false).status, 403);
    assert_eq!(cancel(other, true).status, 403);
    let done = cancel(own, true);
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.json()["state"], "CANCELLED");
    assert_eq!(
        get_json(a, &format!("/api/v1/jobs/{other}"), KEY_B)["state"],
        "QUEUED"
    );

    // The other reads answer with their fields.
    let fleet = get_json(a, "/api/v1/fleet", OPERATOR);
    assert!(fleet["stats"]["revision"].as_u64().is_some_and(|r| r >= 8));
    assert!(fleet["advice"].is_array());
    assert!(get_json(a, "/api/v1/runners", OPERATOR)["runners"].is_array());
    assert!(get_json(a, "/api/v1/pools", OPERATOR)["pools"].is_array());
    assert_eq!(
        get_json(a, "/api/v1/model", OPERATOR)["version"],
        Value::Null
    );
    assert!(get_json(a, "/api/v1/pipelines", OPERATOR)["pipelines"].is_array());
}

/// A queue whose visit order is not id order: `rustci serve --policy priority` with a
/// runner of 1 slot for `linux` that `busy` takes (leased at once; its lease outlives
/// the test), then team-a's `a-0` and `a-1` (priority 0), team-b's `b-0` (priority 5),
/// team-a's `a-2` (priority 9) and `gpu` (no pool has its label: parked). Returns the
/// server and the waiting jobs' names in the order the scheduler will visit them: a-2,
/// b-0, a-0, a-1, then the parked gpu.
pub async fn queue_out_of_id_order(dir: &Path, name: &str) -> (Server, Vec<String>) {
    let server = Server::start_with(
        dir,
        name,
        &["--policy", "priority", "--lease-ttl-ms", "3600000"],
    );
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
    let mut names = std::collections::HashMap::new();
    for (key, job, priority, label) in [
        (KEY_A, "busy", 0, "linux"),
        (KEY_A, "a-0", 0, "linux"),
        (KEY_A, "a-1", 0, "linux"),
        (KEY_B, "b-0", 5, "linux"),
        (KEY_A, "a-2", 9, "linux"),
        (KEY_A, "gpu", 9, "gpu"),
    ] {
        let j = server
            .clients(key)
            .jobs
            .submit_job(pb::SubmitJobRequest {
                request_id: job.into(),
                labels: vec![label.into()],
                slots: 1,
                command: format!("echo {job}"),
                job_name: job.into(),
                requested_ms: 60_000,
                priority,
                ..Default::default()
            })
            .await
            .expect("submit")
            .into_inner();
        names.insert(job, j.name);
    }
    let order = ["a-2", "b-0", "a-0", "a-1", "gpu"]
        .map(|j| names[j].clone())
        .to_vec();
    (server, order)
}

fn names_positions(jobs: &[Value]) -> (Vec<String>, Vec<Value>) {
    jobs.iter()
        .map(|j| {
            (
                j["name"].as_str().expect("name").to_string(),
                j["position"].clone(),
            )
        })
        .unzip()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_lists_waiting_jobs_in_the_order_the_scheduler_visits_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, order) = queue_out_of_id_order(dir.path(), "dash-queue").await;
    let a = server.http;
    let pos = |p: &[Option<u64>]| p.iter().map(|p| serde_json::json!(p)).collect::<Vec<_>>();

    // Visit order (priority first), not id order; the parked job last, without a place.
    let all = get_json(a, "/api/v1/queue", OPERATOR);
    let (names, positions) = names_positions(all["jobs"].as_array().expect("jobs"));
    assert_eq!(names, order);
    assert_eq!(positions, pos(&[Some(0), Some(1), Some(2), Some(3), None]));
    // Predicted starts follow the order on the 1-slot runner (the first starts now).
    let starts: Vec<i64> = all["jobs"].as_array().expect("jobs")[..4]
        .iter()
        .map(|j| j["predicted_start_unix_ms"].as_i64().expect("start"))
        .collect();
    assert!(
        starts[0] > 0 && starts.windows(2).all(|w| w[0] < w[1]),
        "{starts:?}"
    );
    // The same fields as ListJobs' rows, plus the position.
    let listed = get_json(a, "/api/v1/jobs?page_size=1", OPERATOR);
    let mut keys: Vec<String> = listed["jobs"][0]
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    keys.push("position".into());
    keys.sort();
    let mut got: Vec<String> = all["jobs"][0]
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    got.sort();
    assert_eq!(got, keys);

    // Paging: pages of 2 give the same sequence.
    let (paged, pages) = all_pages(a, OPERATOR, "/api/v1/queue", "page_size=2");
    assert_eq!(pages, 3);
    assert_eq!(names_positions(&paged).0, order);

    // A tenant's key: its own jobs, in the same order, with their places among all.
    let (mine, _) = all_pages(a, KEY_A, "/api/v1/queue", "page_size=1");
    let (names, positions) = names_positions(&mine);
    assert_eq!(
        names,
        [&order[0], &order[2], &order[3], &order[4]].map(String::clone)
    );
    assert_eq!(positions, pos(&[Some(0), Some(2), Some(3), None]));
    assert_eq!(get(a, "/api/v1/queue?tenant=team-b", KEY_A).status, 403);
    let (theirs, _) = all_pages(a, OPERATOR, "/api/v1/queue", "tenant=team-b");
    assert_eq!(names_positions(&theirs).0, [order[1].clone()]);

    // Bad input: a 400 naming the parameter.
    expect_400(
        &get(a, "/api/v1/queue?page_token=x", OPERATOR),
        "page_token",
    );
    expect_400(
        &get(a, "/api/v1/queue?page_size=0.5", OPERATOR),
        "page_size",
    );
    expect_400(&get(a, "/api/v1/queue?state=queued", OPERATOR), "state");

    // A pipeline job the core holds back (its stage waits for the first) is queued too:
    // listed after the placed and parked jobs, without a place.
    let job = |name: &str, stage_index: u32| pb::PipelineJobSpec {
        name: name.into(),
        stage: format!("s{stage_index}"),
        stage_index,
        labels: vec!["linux".into()],
        command: format!("echo {name}"),
        requested_ms: 60_000,
        ..Default::default()
    };
    server
        .clients(KEY_A)
        .pipelines
        .submit_pipeline(pb::SubmitPipelineRequest {
            request_id: "held".into(),
            project: "p".into(),
            git_ref: "main".into(),
            jobs: vec![job("first", 0), job("second", 1)],
            ..Default::default()
        })
        .await
        .expect("pipeline");
    let (all, _) = all_pages(a, OPERATOR, "/api/v1/queue", "page_size=2");
    assert_eq!(all.len(), order.len() + 2, "{all:?}");
    let last = all.last().expect("a row");
    assert_eq!(last["job_name"], "second", "{last}");
    assert!(last["position"].is_null(), "{last}");
    assert!(all
        .iter()
        .any(|j| j["job_name"] == "first" && j["position"].is_u64()));
}

#[test]
fn without_auth_the_dashboard_listens_on_loopback_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--http-listen", &format!("0.0.0.0:{}", free_port())])
        .output()
        .expect("run rustci serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--http-listen") && err.contains("loopback"),
        "{err}"
    );
    let help = rustci(["serve", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("--http-listen"));
}

/// The `job` events of an SSE stream, read until `want` says stop or the deadline.
pub struct Events {
    reader: BufReader<TcpStream>,
}

/// One SSE event: (event, id, data).
pub type Event = (String, String, String);

impl Events {
    /// Opens `/api/v1/stream` with `query` and extra `headers` as `key`.
    pub fn open(addr: SocketAddr, query: &str, key: &str, headers: &[(&str, &str)]) -> Self {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut req = format!(
            "GET /api/v1/stream{query} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nAccept: text/event-stream\r\n"
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).expect("send");
        Self {
            reader: BufReader::new(s),
        }
    }

    /// Events until `until` is true of what was read, or panics after `timeout`.
    pub fn read_until(
        &mut self,
        timeout: Duration,
        until: impl Fn(&[Event]) -> bool,
    ) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        let mut out: Vec<Event> = Vec::new();
        let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
        let mut line = String::new();
        let mut in_body = false;
        while !until(&out) {
            assert!(Instant::now() < deadline, "stream: timed out with {out:?}");
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) => panic!("the stream ended after {out:?}"),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) => panic!("reading the stream: {e}"),
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if !in_body {
                in_body = l.is_empty();
                continue;
            }
            // Chunk sizes of the chunked body carry no colon; event fields do.
            if let Some(v) = l.strip_prefix("event:") {
                event = v.trim().into();
            } else if let Some(v) = l.strip_prefix("id:") {
                id = v.trim().into();
            } else if let Some(v) = l.strip_prefix("data:") {
                data.push_str(v.trim());
            } else if l.is_empty() && !data.is_empty() {
                out.push((
                    std::mem::take(&mut event),
                    std::mem::take(&mut id),
                    std::mem::take(&mut data),
                ));
            }
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_resumes_from_its_revision_after_a_server_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(dir.path(), "dash-stream");
    let first = submit(&server, KEY_A, 3, "before").await;
    let _theirs = submit(&server, KEY_B, 1, "theirs").await;

    // Team A's stream from the start: its three jobs, each event's id its revision.
    let mut s = Events::open(server.http, "?from=0", KEY_A, &[]);
    let seen = s.read_until(Duration::from_secs(30), |e| e.len() >= 3);
    let mut last = 0u64;
    for (event, id, data) in &seen {
        assert_eq!(event, "job");
        let d: Value = serde_json::from_str(data).expect("json");
        assert_eq!(d["revision"].to_string(), *id);
        assert_eq!(d["job"]["tenant"], "team-a");
        last = id.parse().expect("revision");
    }
    let names: Vec<&str> = seen
        .iter()
        .map(|(_, _, d)| serde_json::from_str::<Value>(d).expect("json"))
        .map(|d| d["job"]["name"].as_str().map(str::to_string).expect("name"))
        .collect::<Vec<_>>()
        .iter()
        .map(|n| {
            first
                .iter()
                .find(|f| *f == n)
                .expect("a job of team-a")
                .as_str()
        })
        .collect();
    assert_eq!(names, first.iter().map(String::as_str).collect::<Vec<_>>());
    drop(s);

    // The server dies and comes back on the same data; the client resumes with
    // Last-Event-ID and gets what happened after, nothing before, in order.
    server.procs.kill9("dash-stream");
    server.spawn(dir.path(), "dash-stream");
    let after = submit(&server, KEY_A, 2, "after").await;
    let last_id = last.to_string();
    let mut s = Events::open(server.http, "", KEY_A, &[("Last-Event-ID", &last_id)]);
    let resumed = s.read_until(Duration::from_secs(30), |e| e.len() >= 2);
    let mut prev = last;
    for (event, id, data) in &resumed {
        assert_eq!(event, "job");
        let rev: u64 = id.parse().expect("revision");
        assert!(rev > prev, "revision {rev} after {prev}");
        prev = rev;
        let d: Value = serde_json::from_str(data).expect("json");
        assert!(after.iter().any(|a| d["job"]["name"] == a.as_str()), "{d}");
    }
    // `?from=` does the same for a client that starts afresh.
    let mut s = Events::open(server.http, &format!("?from={last}"), KEY_A, &[]);
    let again = s.read_until(Duration::from_secs(30), |e| e.len() >= 2);
    assert_eq!(
        again.iter().map(|e| e.1.clone()).collect::<Vec<_>>(),
        resumed.iter().map(|e| e.1.clone()).collect::<Vec<_>>()
    );
    // And a tenant's stream never carries another tenant's job.
    let mut ops = Events::open(server.http, "?from=0", OPERATOR, &[]);
    let everything = ops.read_until(Duration::from_secs(30), |e| e.len() >= 6);
    assert!(everything.iter().any(|(_, _, d)| d.contains("team-b")));
    assert!(!seen
        .iter()
        .chain(&resumed)
        .any(|(_, _, d)| d.contains("team-b")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_from_a_pruned_revision_gets_reload_and_one_from_the_lists_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The log keeps the last 2 job versions; passes (which prune) run every 100 ms.
    let server = Server::start_with(
        dir.path(),
        "dash-pruned",
        &["--change-log-keep", "2", "--lease-ttl-ms", "500"],
    );
    // Revisions 1..=5 (parked jobs: no runner); once pruned the oldest kept is 4.
    submit(&server, KEY_A, 5, "p").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let reload = loop {
        let mut s = Events::open(server.http, "?from=1", OPERATOR, &[]);
        let first = s
            .read_until(Duration::from_secs(10), |e| !e.is_empty())
            .remove(0);
        if first.0 == "reload" {
            break first;
        }
        // Not pruned yet: revision 2 is still there.
        assert_eq!((first.0.as_str(), first.1.as_str()), ("job", "2"));
        assert!(Instant::now() < deadline, "the change log was never pruned");
        std::thread::sleep(Duration::from_millis(50));
    };
    let data: Value = serde_json::from_str(&reload.2).expect("reload data is JSON");
    assert_eq!(data["error"]["code"], "FailedPrecondition", "{data}");
    let message = data["error"]["message"].as_str().expect("message");
    assert!(message.contains("from_revision 1 was pruned"), "{message}");

    // What the page does on `reload`: re-read the lists, follow from their revision.
    let rev = get_json(server.http, "/api/v1/fleet", OPERATOR)["stats"]["revision"]
        .as_u64()
        .expect("revision");
    let late = submit(&server, KEY_A, 1, "late").await;
    let mut s = Events::open(server.http, &format!("?from={rev}"), OPERATOR, &[]);
    let events = s.read_until(Duration::from_secs(10), |e| !e.is_empty());
    assert_eq!(events[0].0, "job", "{events:?}");
    assert_eq!(events[0].1, (rev + 1).to_string());
    let job: Value = serde_json::from_str(&events[0].2).expect("job data");
    assert_eq!(job["job"]["name"], late[0], "{job}");
}
