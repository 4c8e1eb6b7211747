//! `rustci serve --model DIR`: load the current model version at start, then watch
//! `DIR/CURRENT` and switch every scheduler estimate to a new version when one appears,
//! without a restart and without losing the history the predictor has learned.
//!
//! Loading (reading and checking a file of a few MB, parsing the forest) runs on the
//! blocking pool so it never stalls the async workers; a version that fails to load is
//! logged and the one in use stays.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use rustci_models::artifact::{current_path, version_name};
use rustci_models::ModelHandle;
use tokio::task::JoinHandle;

/// Loads `dir`'s current version; an error names the directory and the problem.
pub async fn load(dir: &Path) -> Result<(ModelHandle, PathBuf)> {
    let d = dir.to_path_buf();
    let current = tokio::task::spawn_blocking(move || ModelHandle::load_current(&d))
        .await
        .context("model loading task failed")?
        .with_context(|| format!("--model {}", dir.display()))?;
    tracing::info!(model = %current.path.display(), mae_s = current.evaluation.model.mae_s, "run-time model loaded");
    Ok((current.handle, current.path))
}

/// Polls `dir` every `every` and swaps `handle` to a new current version.
pub fn spawn_watcher(
    dir: PathBuf,
    handle: ModelHandle,
    mut loaded: PathBuf,
    every: Duration,
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
                    tracing::info!(model = %next.display(), mae_s = artifact.evaluation.model.mae_s, "switched to a new run-time model version");
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
