//! The one error type of `rustci-models`.

use std::path::PathBuf;

/// What can go wrong while training, saving, loading or using a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    #[error("not enough history to train: {0}")]
    NotEnoughData(String),
    #[error("training the {model} failed: {reason}")]
    Training { model: &'static str, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a usable rustci model artifact: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: artifact schema version {found}, this build reads version {expected}")]
    SchemaVersion {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("{path}: artifact was trained with features this build does not compute: {reason}")]
    FeatureMismatch { path: PathBuf, reason: String },
    #[error("{dir}: no model artifact (no CURRENT file); run `rustci retrain --out {dir}` first")]
    NoArtifact { dir: PathBuf },
    #[error("plot {path}: {reason}")]
    Plot { path: PathBuf, reason: String },
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
