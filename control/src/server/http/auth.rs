//! Who calls the dashboard. A request carries its key as `Authorization: Bearer <key>`
//! (scripts) or in the dashboard's cookie (the pages): the browser's `EventSource`
//! cannot set headers, so the pages cannot send one. Opening any page once with
//! `?token=<key>` checks the key, stores it in the cookie (HttpOnly: no script on the
//! page can read it; SameSite=Strict: no other site's page can send it) and redirects to
//! the same page without it, so the key does not stay in the address bar, the history or
//! a `Referer`. A change asked with the cookie must also carry the header
//! [`CSRF_HEADER`], which only this origin's scripts can send.
//!
//! The key is then checked by the gRPC services' own code ([`Auth::authenticate`]),
//! passed to them as the `authorization` metadata they read.

use axum::http::HeaderMap;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Status};

use crate::server::auth::{Auth, Principal};

/// The dashboard's cookie: the caller's key, percent-encoded.
pub const COOKIE: &str = "rustci_token";

/// The header a change asked with the cookie must carry (any value).
pub const CSRF_HEADER: &str = "x-rustci-csrf";

/// The credentials of one HTTP request, as gRPC metadata.
#[derive(Debug, Clone)]
pub struct Caller {
    meta: MetadataMap,
    from_cookie: bool,
}

impl Caller {
    /// The `Authorization` header if there is one, else the cookie's key, else nothing
    /// (the services then answer UNAUTHENTICATED, naming what is missing).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut meta = MetadataMap::new();
        if let Some(v) = headers.get("authorization") {
            if let Ok(v) = MetadataValue::try_from(v.as_bytes()) {
                meta.insert("authorization", v);
            }
            return Self {
                meta,
                from_cookie: false,
            };
        }
        let from_cookie = match cookie_key(headers)
            .and_then(|k| MetadataValue::try_from(format!("Bearer {k}")).ok())
        {
            Some(v) => {
                meta.insert("authorization", v);
                true
            }
            None => false,
        };
        Self { meta, from_cookie }
    }

    /// A service request for `msg` with these credentials.
    pub fn request<T>(&self, msg: T) -> Request<T> {
        Request::from_parts(self.meta.clone(), Default::default(), msg)
    }

    pub fn authenticate(&self, auth: &Auth) -> Result<Principal, Status> {
        auth.authenticate(&self.meta)
    }

    /// A change asked with the cookie needs [`CSRF_HEADER`] too.
    pub fn check_change(&self, headers: &HeaderMap) -> Result<(), Status> {
        if self.from_cookie && !headers.contains_key(CSRF_HEADER) {
            return Err(Status::permission_denied(format!(
                "a change asked with the dashboard's cookie must carry the {CSRF_HEADER} header"
            )));
        }
        Ok(())
    }
}

/// The key in the dashboard's cookie.
fn cookie_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| {
            form_urlencoded::parse(format!("k={value}").as_bytes())
                .map(|(_, v)| v.into_owned())
                .next()
                .unwrap_or_default()
        })
}

/// The `Set-Cookie` value that stores `key` for the pages; `Secure` (sent back over TLS
/// only) when the dashboard is served over TLS.
pub fn set_cookie(key: &str, secure: bool) -> String {
    let value: String = form_urlencoded::byte_serialize(key.as_bytes()).collect();
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_carries_any_key_back_unchanged() {
        let key = "k; with=odd,chars%+é";
        let mut h = HeaderMap::new();
        let set = set_cookie(key, false);
        let pair = set.split(';').next().expect("name=value");
        h.insert(
            "cookie",
            format!("other=1; {pair}").parse().expect("header"),
        );
        assert_eq!(cookie_key(&h).as_deref(), Some(key));
    }

    #[test]
    fn a_change_by_cookie_needs_the_csrf_header_and_one_by_header_does_not() {
        let mut h = HeaderMap::new();
        h.insert(
            "cookie",
            set_cookie("key-a-123", false).parse().expect("header"),
        );
        let by_cookie = Caller::from_headers(&h);
        assert!(by_cookie.check_change(&h).is_err());
        h.insert(CSRF_HEADER, "1".parse().expect("header"));
        assert!(by_cookie.check_change(&h).is_ok());
        let mut b = HeaderMap::new();
        b.insert("authorization", "Bearer key-a-123".parse().expect("header"));
        assert!(Caller::from_headers(&b).check_change(&b).is_ok());
    }
}
