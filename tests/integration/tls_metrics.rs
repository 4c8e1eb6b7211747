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
        body.contains("rustci_queue_depth{pool=") || body.contains("rustci_revision 3"),
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
