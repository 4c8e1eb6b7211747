//! `rustci serve --model DIR`: load the current model version at start, then watch
//! `DIR/CURRENT` and switch every scheduler estimate to a new version when one appears,
//! without a restart and without losing the history the predictor has learned.
//!
//! Loading (reading and checking a file of a few MB, parsing the forest) runs on the
//! blocking pool so it never stalls the async workers; a version that fails to load is
//! logged and the one in use stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rustci_models::artifact::{current_path, version_name};
use rustci_models::eval::Evaluation;
use rustci_models::ModelHandle;
use tokio::task::JoinHandle;

use crate::server::state::Shared;

/// Loads `dir`'s current version; an error names the directory and the problem.
///
/// A directory (or current version) that group or others may write is refused: another
/// local user could swap in a model and steer every estimate, and so the schedule. One
/// they may only read is let through with a warning: an artifact holds no credentials,
/// only per-key margins (user, branch and job names of the history it learned from), and
/// models are often shared on purpose.
pub async fn load(dir: &Path) -> Result<(ModelHandle, PathBuf, Evaluation)> {
    check_not_writable_by_others(dir)?;
    let d = dir.to_path_buf();
    let current = tokio::task::spawn_blocking(move || ModelHandle::load_current(&d))
        .await
        .context("model loading task failed")?
        .with_context(|| format!("--model {}", dir.display()))?;
    check_not_writable_by_others(&current.path)?;
    let (usage, stored) = current.handle.usage();
    tracing::info!(model = %current.path.display(), mae_s = current.evaluation.model.mae_s, %usage, from_artifact = stored, "run-time model loaded");
    Ok((current.handle, current.path, current.evaluation))
}

/// Polls `dir` every `every` and swaps `handle` to a new current version (and
/// `evaluation`, which the dashboard shows, to its evaluation).
pub fn spawn_watcher(
    dir: PathBuf,
    handle: ModelHandle,
    mut loaded: PathBuf,
    every: Duration,
    evaluation: Arc<Shared>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut failed: Option<PathBuf> = None;
        loop {
            tokio::time::sleep(every).await;
            let d = dir.clone();
            let next = match tokio::task::spawn_blocking(move || current_path(&d)).await {
                Ok(Ok(Some(p))) => p,
                Ok(Ok(None)) => continue,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the model directory; keeping the model in use");
                    continue;
                }
                Err(_) => continue,
            };
            if next == loaded || failed.as_ref() == Some(&next) {
                continue;
            }
            let p = next.clone();
            match tokio::task::spawn_blocking(move || rustci_models::Artifact::load(&p)).await {
                Ok(Ok(artifact)) => {
                    let usage = artifact
                        .planning
                        .as_ref()
                        .map(|c| c.usage)
                        .unwrap_or_default();
                    tracing::info!(model = %next.display(), mae_s = artifact.evaluation.model.mae_s, %usage, "switched to a new run-time model version");
                    if let Ok(mut e) = crate::server::locking::lock(&evaluation.model_evaluation) {
                        *e = Some(artifact.evaluation.clone());
                    }
                    handle.replace_artifact(artifact, version_name(&next));
                    loaded = next;
                    failed = None;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "new model version refused; keeping the one in use");
                    failed = Some(next);
                }
                Err(_) => {}
            }
        }
    })
}

/// Refuses `path` if group or others may write it; warns if they may read it.
fn check_not_writable_by_others(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).with_context(|| format!("--model {}", path.display()))?;
    let mode = meta.mode() & 0o777;
    if mode & 0o022 != 0 {
        anyhow::bail!(
            "--model {}: permissions {mode:04o} let other local users replace the model \
             and steer every estimate; run `chmod go-w {}`",
            path.display(),
            path.display()
        );
    }
    if mode & 0o044 != 0 {
        tracing::warn!(
            path = %path.display(),
            "permissions {mode:04o} let other local users read the model (names of users, \
             branches and jobs it learned from)"
        );
    }
    Ok(())
}
