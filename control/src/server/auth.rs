//! Who is calling: a tenant's API key, a runner token, or in local mode the owner's token
//! (`crate::local_token`). Keys and tokens are compared, never logged or echoed.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Deserialize;
use tonic::metadata::MetadataMap;
use tonic::Status;

use crate::local_token::LocalToken;
use crate::perms;

/// The auth file (`rustci serve --auth FILE`):
///
/// ```toml
/// runner_tokens = ["rt-1"]
/// operator_tokens = ["op-1"]   # see and act on every tenant's jobs (the dashboard)
///
/// [[tenant]]
/// name = "team-a"
/// api_keys = ["key-a"]
/// weight = 2.0      # fair-share weight, optional
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    #[serde(default)]
    pub runner_tokens: Vec<String>,
    /// Operators read and act on every tenant's jobs, as local mode's owner does, but
    /// cannot use the runner API.
    #[serde(default)]
    pub operator_tokens: Vec<String>,
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantAuth>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantAuth {
    pub name: String,
    pub api_keys: Vec<String>,
    pub weight: Option<f64>,
}

impl std::fmt::Debug for TenantAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantAuth")
            .field("name", &self.name)
            .field("api_keys", &"<redacted>")
            .finish()
    }
}

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Local mode: no auth file; a caller with the owner's token (the server listens on
    /// loopback only).
    Local,
    Tenant(String),
    Runner,
    /// An operator token of the auth file: every tenant's jobs.
    Operator,
}

#[derive(Clone, Default)]
pub struct Auth {
    /// Local mode's token: `Some` without an auth file.
    local: Option<LocalToken>,
    keys: HashMap<String, String>,
    runner_tokens: HashSet<String>,
    operator_tokens: HashSet<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("local", &self.local.is_some())
            .field("tenants", &self.keys.values().collect::<HashSet<_>>().len())
            .field("runner_tokens", &self.runner_tokens.len())
            .field("operator_tokens", &self.operator_tokens.len())
            .finish()
    }
}

/// What a local-mode server answers a caller without its owner's token.
const LOCAL_ONLY: &str = "this server runs in local mode (no --auth): only the user who \
started it may call it, with the token in that user's ~/.config/rustci/local.token \
(which rustci's CLI and runners send by default); other users need a server started \
with --auth and an API key";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {source}")]
    Toml {
        file: String,
        #[source]
        source: toml::de::Error,
    },
    /// Group or others may read or change the file: its keys may already be known.
    #[error("{file}: {reason}")]
    Exposed { file: String, reason: String },
    #[error("{file}: {field}: {reason}")]
    Invalid {
        file: String,
        field: String,
        reason: String,
    },
}

impl Auth {
    /// Local mode: a caller with `token` (the server owner's) is trusted with everything.
    pub fn local(token: LocalToken) -> Self {
        Self {
            local: Some(token),
            ..Self::default()
        }
    }

    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    pub fn load(path: &Path) -> Result<(Self, AuthFile), AuthError> {
        let file = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| AuthError::Io {
            file: file.clone(),
            source,
        })?;
        perms::check_secret_file(path, &meta, "the API keys and runner tokens").map_err(
            |reason| AuthError::Exposed {
                file: file.clone(),
                reason,
            },
        )?;
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
            file: file.clone(),
            source,
        })?;
        let parsed: AuthFile = toml::from_str(&text).map_err(|source| AuthError::Toml {
            file: file.clone(),
            source,
        })?;
        let auth = Self::from_file(&parsed, &file)?;
        Ok((auth, parsed))
    }

    pub fn from_file(f: &AuthFile, file: &str) -> Result<Self, AuthError> {
        let bad = |field: String, reason: &str| AuthError::Invalid {
            file: file.into(),
            field,
            reason: reason.into(),
        };
        let mut keys = HashMap::new();
        for (i, t) in f.tenants.iter().enumerate() {
            if t.name.is_empty() {
                return Err(bad(format!("tenant[{i}].name"), "must not be empty"));
            }
            if let Some(w) = t.weight {
                if !(w.is_finite() && w > 0.0) {
                    return Err(bad(
                        format!("tenant[{i}] ({}).weight", t.name),
                        "must be > 0",
                    ));
                }
            }
            for (k, key) in t.api_keys.iter().enumerate() {
                if key.len() < 8 {
                    return Err(bad(
                        format!("tenant[{i}] ({}).api_keys[{k}]", t.name),
                        "keys must be at least 8 characters",
                    ));
                }
                if keys.insert(key.clone(), t.name.clone()).is_some() {
                    return Err(bad(
                        format!("tenant[{i}] ({}).api_keys[{k}]", t.name),
                        "the same key is listed twice",
                    ));
                }
            }
        }
        for (i, t) in f.runner_tokens.iter().enumerate() {
            if t.len() < 8 {
                return Err(bad(
                    format!("runner_tokens[{i}]"),
                    "tokens must be at least 8 characters",
                ));
            }
            if keys.contains_key(t) {
                return Err(bad(
                    format!("runner_tokens[{i}]"),
                    "is also a tenant's API key",
                ));
            }
        }
        for (i, t) in f.operator_tokens.iter().enumerate() {
            if t.len() < 8 {
                return Err(bad(
                    format!("operator_tokens[{i}]"),
                    "tokens must be at least 8 characters",
                ));
            }
            if keys.contains_key(t) || f.runner_tokens.contains(t) {
                return Err(bad(
                    format!("operator_tokens[{i}]"),
                    "is also a tenant's API key or a runner token",
                ));
            }
        }
        Ok(Self {
            local: None,
            keys,
            runner_tokens: f.runner_tokens.iter().cloned().collect(),
            operator_tokens: f.operator_tokens.iter().cloned().collect(),
        })
    }

    /// The caller of a request, from its `authorization: Bearer ...` header.
    pub fn authenticate(&self, meta: &MetadataMap) -> Result<Principal, Status> {
        let Some(value) = meta.get("authorization") else {
            return Err(Status::unauthenticated(match self.local {
                Some(_) => LOCAL_ONLY,
                None => "missing authorization header (Bearer API key or runner token)",
            }));
        };
        let secret = value
            .to_str()
            .ok()
            // RFC 7235: the scheme is case-insensitive (`bearer`, `BEARER`).
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, secret)| secret.trim_start_matches(' '))
            .ok_or_else(|| {
                Status::unauthenticated("authorization header must be \"Bearer <key>\"")
            })?;
        if let Some(token) = &self.local {
            return if token.matches(secret) {
                Ok(Principal::Local)
            } else {
                Err(Status::unauthenticated(LOCAL_ONLY))
            };
        }
        if let Some(tenant) = self.keys.get(secret) {
            return Ok(Principal::Tenant(tenant.clone()));
        }
        if self.runner_tokens.contains(secret) {
            return Ok(Principal::Runner);
        }
        if self.operator_tokens.contains(secret) {
            return Ok(Principal::Operator);
        }
        Err(Status::unauthenticated("unknown API key or token"))
    }
}
