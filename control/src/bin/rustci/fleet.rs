//! `rustci fleet`: queue statistics and scaling advice.

use anyhow::Result;
use clap::Subcommand;
use rustci_control::clients::client;
use rustci_control::pb;

use crate::conn::Conn;
use crate::output::{cell, print_json, Format};

pub const FLEET_EXAMPLES: &str = "\
Examples:
  rustci fleet stats
  rustci fleet advice --format json";

#[derive(Debug, Subcommand)]
pub enum FleetCmd {
    /// Queue lengths and waits of the last hour per pool, per pool and QoS class (against
    /// the class's wait target) and per tenant.
    #[command(after_help = "Examples:\n  rustci fleet stats --format json")]
    Stats {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Desired runners per pool.
    #[command(after_help = "Examples:\n  rustci fleet advice")]
    Advice {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

pub async fn run(cmd: FleetCmd) -> Result<()> {
    match cmd {
        FleetCmd::Stats { conn, format } => {
            let mut c = conn.connect().await?;
            let s = c
                .fleet
                .get_queue_stats(pb::GetQueueStatsRequest {})
                .await?
                .into_inner();
            match format {
                Format::Json => print_json(&client::queue_stats_json(&s)),
                Format::Table => {
                    let row = |kind: &str,
                               name: &str,
                               extra: String,
                               w: &Option<pb::WaitStats>|
                     -> Result<()> {
                        let w = (*w).unwrap_or_default();
                        outln!(
                            "{kind:<7} {:<20} {extra:<16} {:>7} {:>7} {:>9} {:>9} {:>9} {:>8}",
                            cell(name, 20),
                            w.queued,
                            w.running,
                            w.wait_p50_ms,
                            w.wait_p95_ms,
                            w.wait_p99_ms,
                            w.started_last_hour
                        );
                        Ok(())
                    };
                    outln!(
                        "KIND    NAME                 BUSY/RUN/FREE     QUEUED RUNNING  P50_MS    P95_MS    P99_MS    STARTED_1H"
                    );
                    for p in &s.pools {
                        row(
                            "pool",
                            &p.pool,
                            format!("{}/{}/{}", p.busy_runners, p.runners, p.free_slots),
                            &p.stats,
                        )?;
                        // Each class under its pool, with its target and whether the
                        // hour's p95 met it ("-": none of its jobs started here).
                        for c in &p.classes {
                            let met = match client::p95_within_target(c) {
                                Some(true) => "ok",
                                Some(false) => "OVER",
                                None => "-",
                            };
                            row(
                                "  qos",
                                &format!("{}/{}", p.pool, c.qos),
                                format!("<={}s {met}", c.wait_target_ms / 1000),
                                &c.stats,
                            )?;
                        }
                    }
                    for t in &s.tenants {
                        row("tenant", &t.tenant, String::new(), &t.stats)?;
                    }
                    outln!("revision {}", s.revision);
                    Ok(())
                }
            }
        }
        FleetCmd::Advice { conn, format } => {
            let mut c = conn.connect().await?;
            let a = c
                .fleet
                .get_scaling_advice(pb::GetScalingAdviceRequest {})
                .await?
                .into_inner();
            match format {
                Format::Json => print_json(&client::scaling_advice_json(&a)),
                Format::Table => {
                    outln!("POOL                 CURRENT  DESIRED  REASON");
                    for p in &a.pools {
                        outln!(
                            "{:<20} {:>7}  {:>7}  {}",
                            cell(&p.pool, 20),
                            p.current_runners,
                            p.desired_runners,
                            p.reason
                        );
                    }
                    Ok(())
                }
            }
        }
    }
}
