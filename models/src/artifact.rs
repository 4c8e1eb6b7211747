//! Versioned model artifacts in a directory:
//!
//! ```text
//! DIR/v000001.model   one trained version (header line + JSON body)
//! DIR/v000002.model
//! DIR/CURRENT          the file name of the version in use
//! ```
//!
//! A file starts with `rustci-model <schema> fnv64:<hex> bytes:<n>` on its own line, so a
//! truncated, corrupt or foreign file is refused before its body is parsed; the body
//! carries the feature list, the training-data fingerprint and the evaluation. Writes go
//! to a temporary file that is synced and renamed, so a crash or a full disk leaves the
//! previous version in use.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::arrivals::ArrivalModel;
use crate::error::ModelError;
use crate::eval::Evaluation;
use crate::features::feature_names;
use crate::planning::PlanChoice;
use crate::train::{RunTimeModel, TrainParams};

/// Bumped whenever features or the body layout change.
/// 2: the stack gained the branch median (four inputs). 3: each key's last outcome.
/// 4: the keyed weighted median (fifth stack input), per-key upper margins.
pub const SCHEMA_VERSION: u32 = 4;
const MAGIC: &str = "rustci-model";
const CURRENT: &str = "CURRENT";

/// Where a model's training data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// FNV-1a over every training job's id, submit time and run time, in order.
    pub fingerprint: String,
    pub jobs: usize,
    pub sources: Vec<String>,
    /// Epoch of the trace clock (for time-of-day features), if known.
    pub unix_start: Option<i64>,
    /// Submit time of the newest training job: later jobs are unseen by this version.
    #[serde(default)]
    pub last_submit_s: Option<i64>,
    pub params: TrainParams,
}

/// One trained version.
#[derive(Debug, Serialize, Deserialize)]
pub struct Artifact {
    pub schema_version: u32,
    pub created_unix_s: i64,
    pub features: Vec<String>,
    pub training: TrainingInfo,
    pub evaluation: Evaluation,
    pub model: RunTimeModel,
    pub arrivals: Option<ArrivalModel>,
    /// The planning estimate and correction `rustci retrain` chose by replaying held-out
    /// history, with every candidate's figure. Absent (older artifacts, or no machine to
    /// replay on): the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planning: Option<PlanChoice>,
}

fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Fingerprint of a training set: changes when any job's id, submit or run time does.
pub fn fingerprint<'a>(jobs: impl Iterator<Item = (&'a str, i64, i64)>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (id, submit, run) in jobs {
        for b in id
            .bytes()
            .chain(submit.to_le_bytes())
            .chain(run.to_le_bytes())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

impl Artifact {
    /// Serialises with the checked header.
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let body = serde_json::to_vec(self)?;
        let mut out = format!(
            "{MAGIC} {SCHEMA_VERSION} fnv64:{:016x} bytes:{}\n",
            fnv64(&body),
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Parses and checks a file's bytes; `path` is for messages.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, ModelError> {
        let corrupt = |reason: String| ModelError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let nl = bytes
            .iter()
            .position(|&b| b == b'\n')
            .filter(|&i| i < 200)
            .ok_or_else(|| corrupt("no `rustci-model` header line".into()))?;
        let header = std::str::from_utf8(&bytes[..nl])
            .map_err(|_| corrupt("header line is not text".into()))?;
        let parts: Vec<&str> = header.split(' ').collect();
        let [magic, version, hash, len] = parts[..] else {
            return Err(corrupt(format!("unexpected header {header:?}")));
        };
        if magic != MAGIC {
            return Err(corrupt(format!(
                "first line {header:?} does not start with `{MAGIC}`"
            )));
        }
        let found: u32 = version
            .parse()
            .map_err(|_| corrupt(format!("schema version {version:?} is not a number")))?;
        if found != SCHEMA_VERSION {
            return Err(ModelError::SchemaVersion {
                path: path.to_path_buf(),
                found,
                expected: SCHEMA_VERSION,
            });
        }
        let want_len: usize = len
            .strip_prefix("bytes:")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| corrupt(format!("bad length field {len:?}")))?;
        let body = &bytes[nl + 1..];
        if body.len() != want_len {
            return Err(corrupt(format!(
                "body is {} bytes, header says {want_len} (truncated or appended to)",
                body.len()
            )));
        }
        let want_hash = hash
            .strip_prefix("fnv64:")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .ok_or_else(|| corrupt(format!("bad checksum field {hash:?}")))?;
        if fnv64(body) != want_hash {
            return Err(corrupt("checksum mismatch: the body was modified".into()));
        }
        let artifact: Artifact = serde_json::from_slice(body)
            .map_err(|e| corrupt(format!("body does not parse: {e}")))?;
        if artifact.schema_version != SCHEMA_VERSION {
            return Err(ModelError::SchemaVersion {
                path: path.to_path_buf(),
                found: artifact.schema_version,
                expected: SCHEMA_VERSION,
            });
        }
        let expected = feature_names(&artifact.model.extras);
        if artifact.features != expected || artifact.model.names != expected {
            return Err(ModelError::FeatureMismatch {
                path: path.to_path_buf(),
                reason: format!(
                    "artifact lists {} features, this build computes {} for its extras",
                    artifact.features.len(),
                    expected.len()
                ),
            });
        }
        if artifact.model.impute.len() != expected.len() {
            return Err(corrupt(
                "imputation table does not match the features".into(),
            ));
        }
        if let Some(f) = &artifact.model.forest {
            if f.width != expected.len() {
                return Err(corrupt("the forest was built for other features".into()));
            }
            f.check().map_err(|e| corrupt(format!("forest: {e}")))?;
        }
        Ok(artifact)
    }

    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let bytes = fs::read(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_bytes(path, &bytes)
    }
}

fn version_of(name: &str) -> Option<u32> {
    name.strip_prefix('v')?.strip_suffix(".model")?.parse().ok()
}

/// A version's name for people and reports: its file name without the extension
/// (`v000003`).
pub fn version_name(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("model")
        .to_string()
}

/// The version `DIR/CURRENT` names, if any.
pub fn current_path(dir: &Path) -> Result<Option<PathBuf>, ModelError> {
    let cur = dir.join(CURRENT);
    match fs::read_to_string(&cur) {
        Ok(name) => {
            let name = name.trim();
            if version_of(name).is_none() {
                return Err(ModelError::Corrupt {
                    path: cur,
                    reason: format!("names {name:?}, not a vNNNNNN.model file"),
                });
            }
            Ok(Some(dir.join(name)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ModelError::io(cur, e)),
    }
}

/// Loads the version in use.
pub fn load_current(dir: &Path) -> Result<(PathBuf, Artifact), ModelError> {
    let path = current_path(dir)?.ok_or_else(|| ModelError::NoArtifact {
        dir: dir.to_path_buf(),
    })?;
    let a = Artifact::load(&path)?;
    Ok((path, a))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(ModelError::io(path, e));
    }
    Ok(())
}

/// Writes `artifact` as the next version and makes it current. Returns its path.
pub fn save_version(dir: &Path, artifact: &Artifact) -> Result<PathBuf, ModelError> {
    fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let mut next = 1;
    for entry in fs::read_dir(dir).map_err(|e| ModelError::io(dir, e))? {
        let entry = entry.map_err(|e| ModelError::io(dir, e))?;
        if let Some(v) = entry.file_name().to_str().and_then(version_of) {
            next = next.max(v + 1);
        }
    }
    let name = format!("v{next:06}.model");
    let path = dir.join(&name);
    let bytes = artifact.to_bytes().map_err(|e| ModelError::Corrupt {
        path: path.clone(),
        reason: format!("cannot serialise: {e}"),
    })?;
    write_synced(&path, &bytes)?;
    write_synced(&dir.join(CURRENT), format!("{name}\n").as_bytes())?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(path)
}
