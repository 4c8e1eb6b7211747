//! TLS when a certificate and key are given (rustls), health checking, and the
//! Prometheus endpoint.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use crate::common::{as_owner, owner_channel};
use rustci_control::pb::job_service_client::JobServiceClient;
use rustci_control::pb::*;
use rustci_control::server::{start, ServeOptions};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

/// A test CA and a server certificate for localhost/127.0.0.1 signed by it, made by the
/// system's `openssl`. Returns (CA certificate, server certificate, server key).
fn certificates(dir: &std::path::Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let p = |n: &str| dir.join(n);
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .ok()?;
    let steps: [Vec<String>; 3] = [
        [
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=rustci-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]
        .map(String::from)
        .to_vec(),
        [
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-out",
            "leaf.csr",
        ]
        .map(String::from)
        .to_vec(),
        [
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for args in steps {
        let ok = Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: TLS test needs the `openssl` command to make certificates"
            );
            return None;
        }
    }
    Some((p("ca.pem"), p("cert.pem"), p("key.pem")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_and_plaintext_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((ca, cert, key)) = certificates(dir.path()) else {
        return;
    };
    let srv = start(ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().join("data"),
        tls: Some((cert, key)),
        ..ServeOptions::default()
    })
    .await
    .expect("server");
    let ca = Certificate::from_pem(std::fs::read(&ca).expect("ca"));
    let ch = Channel::from_shared(format!("https://localhost:{}", srv.addr.port()))
        .expect("uri")
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(ca)
                .domain_name("localhost"),
        )
        .expect("tls config")
        .connect()
        .await
        .expect("TLS connect");
    let job = JobServiceClient::new(as_owner(ch))
        .submit_job(SubmitJobRequest {
            request_id: "r".into(),
            tenant: "t".into(),
            command: "true".into(),
            ..Default::default()
        })
        .await
        .expect("submit over TLS")
        .into_inner();
    assert_eq!(job.state, JobState::Queued as i32);
    // A plaintext client gets no service.
    let plain = Channel::from_shared(format!("http://127.0.0.1:{}", srv.addr.port()))
        .expect("uri")
        .connect()
        .await;
    if let Ok(ch) = plain {
        let r = JobServiceClient::new(as_owner(ch))
            .get_job(GetJobRequest {
                name: job.name.clone(),
            })
            .await;
        assert!(r.is_err(), "plaintext must not work against a TLS server");
    }
    srv.stop().await.expect("stop");
}

/// An `openssl s_client` connected to `addr`, checking the server's certificate against
/// `ca`; what is written to its stdin goes over TLS, the reply comes on its stdout.
fn s_client(addr: std::net::SocketAddr, ca: &std::path::Path) -> std::process::Child {
    use std::process::Stdio;
    Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-verify_return_error",
            "-servername",
            "localhost",
        ])
        .arg("-connect")
        .arg(addr.to_string())
        .arg("-CAfile")
        .arg(ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl s_client")
}

/// One HTTPS request through [`s_client`]; the whole reply (headers and body).
fn https_get(addr: std::net::SocketAddr, ca: &std::path::Path, path: &str, key: &str) -> String {
    let mut child = s_client(addr, ca);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    );
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.as_bytes())
        .expect("send the request");
    let out = child.wait_with_output().expect("openssl s_client");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `--tls-cert` serves the dashboard over HTTPS too: the API answers through a client
/// that verifies the certificate, the sign-in cookie is `Secure`, a plain-text request
/// gets no page, and a kept-alive connection does not outlive the server's stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_over_tls_with_the_grpc_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((ca, cert, key)) = certificates(dir.path()) else {
        return;
    };
    let auth = dir.path().join("auth.toml");
    crate::common::write_private(&auth, crate::dashboard::AUTH);
    let srv = start(ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().join("data"),
        tls: Some((cert, key)),
        auth: Some(auth),
        http_listen: Some("127.0.0.1:0".parse().expect("addr")),
        ..ServeOptions::default()
    })
    .await
    .expect("server");
    let http = srv.http_addr.expect("dashboard address");
    let ca_kept = ca.clone();
    let (fleet, signed_in) = tokio::task::spawn_blocking(move || {
        (
            https_get(http, &ca, "/api/v1/fleet", crate::dashboard::OPERATOR),
            https_get(http, &ca, "/?token=key-team-a-1", "none"),
        )
    })
    .await
    .expect("join");
    assert!(fleet.starts_with("HTTP/1.1 200"), "{fleet}");
    assert!(fleet.contains("\"pools\""), "{fleet}");
    assert!(signed_in.starts_with("HTTP/1.1 303"), "{signed_in}");
    let cookie = signed_in
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {signed_in}"));
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");

    let plain = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(http).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .expect("timeout");
        s.write_all(b"GET /api/v1/fleet HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("request");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    })
    .await
    .expect("join");
    assert!(
        !plain.starts_with(b"HTTP/"),
        "plain HTTP must get no answer"
    );

    // A browser's connection, kept alive after its answer, ends with the server.
    let kept = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut child = s_client(http, &ca_kept);
        let mut stdin = child.stdin.take().expect("stdin");
        let request = format!(
            "GET /api/v1/fleet HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
            crate::dashboard::OPERATOR
        );
        stdin
            .write_all(request.as_bytes())
            .expect("send the request");
        let mut stdout = child.stdout.take().expect("stdout");
        let (mut seen, mut buf) = (Vec::new(), [0u8; 4096]);
        while !String::from_utf8_lossy(&seen).contains("\"revision\"") {
            let n = stdout.read(&mut buf).expect("read the answer");
            assert!(
                n > 0,
                "closed before the answer: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
        // Both pipes stay open: s_client ends only when the connection does.
        (child, stdin, stdout)
    })
    .await
    .expect("join");
    srv.stop().await.expect("stop");
    let ended = tokio::task::spawn_blocking(move || {
        let (mut child, stdin, stdout) = kept;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let ended = loop {
            if child.try_wait().expect("wait for s_client").is_some() {
                break true;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                break false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        drop((stdin, stdout));
        ended
    })
    .await
    .expect("join");
    assert!(
        ended,
        "a kept-alive HTTPS connection outlived the server's stop by 30 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = start(ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().to_path_buf(),
        metrics_listen: Some("127.0.0.1:0".parse().expect("addr")),
        ..ServeOptions::default()
    })
    .await
    .expect("server");
    let ch = owner_channel(srv.addr).await;
    // One slot: the first job runs, two wait.
    crate::common::register_r0(&ch).await;
    let mut jobs = JobServiceClient::new(ch.clone());
    for i in 0..3 {
        jobs.submit_job(SubmitJobRequest {
            request_id: format!("r{i}"),
            tenant: "t".into(),
            labels: vec!["linux".into()],
            command: "true".into(),
            ..Default::default()
        })
        .await
        .expect("submit");
    }
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "rustci.v1.JobService".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let addr = srv.metrics_addr.expect("metrics address");
    let body = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(addr).expect("connect metrics");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("request");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("response");
        out
    })
    .await
    .expect("join");
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("rustci_jobs_submitted_total 3"), "{body}");
    assert!(
        body.contains("rustci_queue_depth{pool=\"lin\"} 2"),
        "{body}"
    );
    assert!(
        body.contains("rustci_jobs_running{pool=\"lin\"} 1"),
        "{body}"
    );
    // Per QoS class: the default class holds both waiting jobs, the others none.
    assert!(
        body.contains("rustci_qos_queue_depth{pool=\"lin\",qos=\"standard\"} 2"),
        "{body}"
    );
    assert!(
        body.contains("rustci_qos_queue_depth{pool=\"lin\",qos=\"urgent\"} 0"),
        "{body}"
    );
    // The job leased in the pass that admitted it waited 0 ms; no urgent job started,
    // so urgent has no wait series at all.
    assert!(
        body.lines()
            .any(|l| l
                == "rustci_qos_wait_seconds{pool=\"lin\",qos=\"standard\",quantile=\"0.95\"} 0"),
        "{body}"
    );
    assert!(
        !body.contains("rustci_qos_wait_seconds{pool=\"lin\",qos=\"urgent\""),
        "{body}"
    );
    assert!(body.contains("rustci_leader 1"), "{body}");
    srv.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_open_watch_streams() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = start(ServeOptions {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.path().to_path_buf(),
        ..ServeOptions::default()
    })
    .await
    .expect("server");
    let ch = owner_channel(srv.addr).await;
    let mut jobs = JobServiceClient::new(ch);
    let mut stream = crate::common::watch_all(&mut jobs).await;
    jobs.submit_job(SubmitJobRequest {
        request_id: "r".into(),
        tenant: "t".into(),
        command: "true".into(),
        ..Default::default()
    })
    .await
    .expect("submit");
    let first = stream.message().await.expect("event").expect("an event");
    assert_eq!(first.job.expect("job").request_id, "r");
    // With the stream still open, stop must finish (it used to wait forever).
    tokio::time::timeout(std::time::Duration::from_secs(10), srv.stop())
        .await
        .expect("stop returns while a watch stream is open")
        .expect("stop");
}
