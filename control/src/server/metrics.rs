//! Prometheus metrics over plain HTTP (`GET /metrics`, text exposition format 0.0.4).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::server::state::Shared;

/// The exposition text.
pub fn render(shared: &Shared) -> String {
    use std::fmt::Write;
    let m = &shared.metrics;
    let mut s = String::new();
    let _ = writeln!(s, "# HELP rustci_jobs_submitted_total Jobs accepted by SubmitJob.\n# TYPE rustci_jobs_submitted_total counter\nrustci_jobs_submitted_total {}", m.submitted.get());
    let _ = writeln!(s, "# HELP rustci_leases_total Leases handed to runners.\n# TYPE rustci_leases_total counter\nrustci_leases_total {}", m.leased.get());
    let _ = writeln!(s, "# HELP rustci_jobs_completed_total Completions accepted.\n# TYPE rustci_jobs_completed_total counter\nrustci_jobs_completed_total {}", m.completed.get());
    if let Ok(live) = crate::server::locking::lock(&shared.live) {
        let _ = writeln!(s, "# HELP rustci_decisions_total Scheduling decisions (starts, requeues) since this replica took over.\n# TYPE rustci_decisions_total counter\nrustci_decisions_total {}", live.decisions_total());
        let _ = writeln!(s, "# HELP rustci_leader Whether this replica serves (1) or stands by (0).\n# TYPE rustci_leader gauge\nrustci_leader {}", u8::from(shared.leader.load(std::sync::atomic::Ordering::SeqCst)));
        let stats = live.queue_stats();
        let _ = writeln!(s, "# HELP rustci_queue_depth Queued jobs a pool could run.\n# TYPE rustci_queue_depth gauge");
        for p in &stats.pools {
            let (pool, w) = (&p.pool, &p.stats);
            let _ = writeln!(
                s,
                "rustci_queue_depth{{pool=\"{}\"}} {}",
                escape(pool),
                w.queued
            );
        }
        let _ = writeln!(
            s,
            "# HELP rustci_jobs_running Leased jobs per pool.\n# TYPE rustci_jobs_running gauge"
        );
        for p in &stats.pools {
            let (pool, w) = (&p.pool, &p.stats);
            let _ = writeln!(
                s,
                "rustci_jobs_running{{pool=\"{}\"}} {}",
                escape(pool),
                w.running
            );
        }
        let _ = writeln!(
            s,
            "# HELP rustci_runners Registered runners per pool.\n# TYPE rustci_runners gauge"
        );
        for p in &stats.pools {
            let (pool, runners) = (&p.pool, p.runners);
            let _ = writeln!(s, "rustci_runners{{pool=\"{}\"}} {runners}", escape(pool));
        }
        let _ = writeln!(s, "# HELP rustci_wait_seconds Queue wait of jobs started in the last hour.\n# TYPE rustci_wait_seconds gauge");
        for p in &stats.pools {
            let (pool, w) = (&p.pool, &p.stats);
            for (q, v) in [
                ("0.5", w.wait_p50_ms),
                ("0.95", w.wait_p95_ms),
                ("0.99", w.wait_p99_ms),
            ] {
                let _ = writeln!(
                    s,
                    "rustci_wait_seconds{{pool=\"{}\",quantile=\"{q}\"}} {}",
                    escape(pool),
                    v as f64 / 1000.0
                );
            }
        }
        let _ = writeln!(s, "# HELP rustci_qos_queue_depth Queued jobs of a QoS class a pool could run.\n# TYPE rustci_qos_queue_depth gauge");
        for p in &stats.pools {
            for c in &p.classes {
                let _ = writeln!(
                    s,
                    "rustci_qos_queue_depth{{pool=\"{}\",qos=\"{}\"}} {}",
                    escape(&p.pool),
                    escape(&c.qos),
                    c.stats.queued
                );
            }
        }
        let _ = writeln!(s, "# HELP rustci_qos_wait_seconds Queue wait of a QoS class's jobs a pool started in the last hour (absent: none started).\n# TYPE rustci_qos_wait_seconds gauge");
        for p in &stats.pools {
            // No start, no wait: a 0 would read as a target met.
            for c in p.classes.iter().filter(|c| c.stats.started_last_hour > 0) {
                for (q, v) in [("0.5", c.stats.wait_p50_ms), ("0.95", c.stats.wait_p95_ms)] {
                    let _ = writeln!(
                        s,
                        "rustci_qos_wait_seconds{{pool=\"{}\",qos=\"{}\",quantile=\"{q}\"}} {}",
                        escape(&p.pool),
                        escape(&c.qos),
                        v as f64 / 1000.0
                    );
                }
            }
        }
        let _ = writeln!(s, "# HELP rustci_revision Latest committed revision.\n# TYPE rustci_revision counter\nrustci_revision {}", stats.revision);
    }
    let flushed = crate::server::flush::stats();
    let _ = writeln!(
        s,
        "# HELP rustci_store_commits_total Group commits made.\n# TYPE rustci_store_commits_total counter\nrustci_store_commits_total {}",
        flushed.commits
    );
    let _ = writeln!(
        s,
        "# HELP rustci_store_commit_retries_total Store commits retried on an error the database labels transient (MongoDB).\n# TYPE rustci_store_commit_retries_total counter\nrustci_store_commit_retries_total {}",
        crate::store::mongo::retries()
    );
    let _ = writeln!(
        s,
        "# HELP rustci_store_commit_failures_total Group commits that failed after retries; each rebuilt the state from the store.\n# TYPE rustci_store_commit_failures_total counter\nrustci_store_commit_failures_total {}",
        flushed.failed
    );
    s
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` until the task is dropped.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n =
                match tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut buf))
                    .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
            let head = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if head.starts_with("GET /metrics ") {
                ("200 OK", render(&shared))
            } else {
                ("404 Not Found", "try GET /metrics\n".to_string())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}
