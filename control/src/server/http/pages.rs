//! The dashboard's pages: one HTML shell for every page (`/`, `/queue`, `/pipelines`,
//! `/pipelines/{id}`, `/tenants`, `/model`), its script and its style sheet, embedded in
//! the binary (no build step, nothing fetched from elsewhere). The script draws the page
//! the path names from `/api/v1/` and keeps it current from `/api/v1/stream`.

use std::sync::Arc;

use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::api::dashboard_caller;
use super::auth::set_cookie;
use super::error::http_status;
use super::Https;
use crate::server::state::Shared;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Only this origin's script and style, no inline code, no framing: a job's name or
/// command shown on a page cannot run as script.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The page shell, for a caller with a valid key (header or cookie); `?token=KEY` signs
/// in (see [`super::auth`]).
pub async fn page(
    State(shared): State<Arc<Shared>>,
    Extension(Https(https)): Extension<Https>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> Response {
    let token = form_urlencoded::parse(q.as_deref().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());
    if let Some(key) = token {
        let mut h = HeaderMap::new();
        if let Ok(v) = format!("Bearer {key}").parse() {
            h.insert("authorization", v);
        }
        return match dashboard_caller(&shared, &h) {
            Ok(_) => (
                StatusCode::SEE_OTHER,
                [
                    ("location", uri.path().to_string()),
                    ("set-cookie", set_cookie(&key, https)),
                    ("cache-control", "no-store".to_string()),
                ],
            )
                .into_response(),
            Err(s) => refused(&s),
        };
    }
    match dashboard_caller(&shared, &headers) {
        Ok(_) => (
            StatusCode::OK,
            [
                ("content-type", "text/html; charset=utf-8"),
                ("content-security-policy", CSP),
                ("cache-control", "no-store"),
                ("x-content-type-options", "nosniff"),
            ],
            INDEX,
        )
            .into_response(),
        Err(s) => refused(&s),
    }
}

/// 401 (no or a wrong key) or 403 (a runner token) with a page saying how to sign in.
fn refused(s: &tonic::Status) -> Response {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>rustci: sign in</title>\
         <h1>{}: not signed in</h1><p>{}</p><p>Open this page once with \
         <code>?token=YOUR_API_KEY</code> (an operator token sees every tenant; in local \
         mode the token in <code>~/.config/rustci/local.token</code>).</p>",
        http_status(s.code()).as_u16(),
        escape(s.message())
    );
    (
        http_status(s.code()),
        [
            ("content-type", "text/html; charset=utf-8"),
            ("content-security-policy", CSP),
            ("cache-control", "no-store"),
        ],
        body,
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The script and the style sheet (no secrets: served without a key).
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "style.css" => (STYLE_CSS, "text/css; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        StatusCode::OK,
        [
            ("content-type", kind),
            ("cache-control", "no-cache"),
            ("x-content-type-options", "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// Bytes of the whole dashboard: the shell and every asset it loads.
pub fn weight_bytes() -> usize {
    INDEX.len() + APP_JS.len() + STYLE_CSS.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_page_with_every_asset_weighs_under_300_kb() {
        assert!(weight_bytes() < 300 * 1024, "{} bytes", weight_bytes());
        // Nothing is fetched from elsewhere.
        for text in [INDEX, APP_JS, STYLE_CSS] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
    }
}
