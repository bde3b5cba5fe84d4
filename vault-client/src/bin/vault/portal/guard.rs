//! What every request to the portal passes before a page sees it: the
//! `Host` header (DNS rebinding), the per-run secret (the URL token,
//! exchanged once for a session cookie), the CSRF token on every form, and
//! the response headers (a strict Content-Security-Policy, no framing, no
//! caching, no referrer).
//!
//! **Invariant:** no handler runs for a request that failed a check here,
//! and a refused POST changes nothing (it is refused before the handler,
//! so before any call to the vault).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::pages;
use super::text::Lang;
use super::Portal;

/// The Content-Security-Policy of every response: nothing from anywhere
/// but the portal itself, no inline script or style, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Paths served without a session: the stylesheet and script (the same
/// for everyone, so an error page is readable) and the signed-out page.
const PUBLIC_PATHS: [&str; 3] = ["/assets/style.css", "/assets/portal.js", "/signed-out"];

/// A 32-byte random secret, as 64 hex digits.
pub fn random_secret() -> Result<String, ring::error::Unspecified> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The one signed-in session of a run.
#[derive(Debug)]
pub struct Session {
    /// The cookie's value.
    pub id: String,
    /// The CSRF token every form carries.
    pub csrf: String,
    /// The last request seen (inactivity sign-out).
    pub last_seen: Instant,
}

/// The run's secrets: the URL token until it is used, then the session.
#[derive(Debug)]
pub struct Secrets {
    /// The URL token; `None` once exchanged.
    token: Option<String>,
    /// The session, once signed in; `None` again after sign-out.
    session: Option<Session>,
    /// Set once the session ended (sign-out or inactivity).
    pub ended: bool,
}

impl Secrets {
    /// A run's secrets around its URL token.
    pub fn new(token: String) -> Self {
        Secrets {
            token: Some(token),
            session: None,
            ended: false,
        }
    }

    /// Exchanges the URL token for a session (once): the new session's
    /// cookie value.
    pub fn exchange(&mut self, token: &str) -> Option<String> {
        let expected = self.token.as_deref()?;
        if !same_secret(expected, token) {
            return None;
        }
        let id = random_secret().ok()?;
        let csrf = random_secret().ok()?;
        self.token = None;
        self.session = Some(Session {
            id: id.clone(),
            csrf,
            last_seen: Instant::now(),
        });
        Some(id)
    }

    /// The CSRF token of the session whose cookie is `cookie`, touching
    /// its last-seen time; `None` when the cookie is not the session's or
    /// the session went idle for longer than `idle` (which ends it).
    pub fn check(&mut self, cookie: Option<&str>, idle: Duration) -> Option<String> {
        let session = self.session.as_mut()?;
        if !same_secret(&session.id, cookie?) {
            return None;
        }
        if session.last_seen.elapsed() > idle {
            self.end();
            return None;
        }
        session.last_seen = Instant::now();
        Some(session.csrf.clone())
    }

    /// Ends the session (sign-out or inactivity); the token is gone too.
    pub fn end(&mut self) {
        self.session = None;
        self.token = None;
        self.ended = true;
    }

    /// Whether the session went idle for longer than `idle`.
    pub fn idle_for(&self, idle: Duration) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.last_seen.elapsed() > idle)
    }
}

/// The session's CSRF token, put in the request's extensions for pages.
#[derive(Debug, Clone)]
pub struct Csrf(pub String);

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The language of a request: `?lang=`, else the language cookie, else
/// the browser's `Accept-Language`.
pub fn language(headers: &HeaderMap, query: Option<&str>) -> Lang {
    let asked = query.and_then(|q| {
        q.split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == "lang")
            .and_then(|(_, v)| Lang::from_tag(v))
    });
    asked
        .or_else(|| cookie(headers, super::LANG_COOKIE).and_then(Lang::from_tag))
        .unwrap_or_else(|| {
            Lang::from_accept_language(
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default(),
            )
        })
}

/// The checks, in order: Host, then (but for public paths and the token
/// exchange) the session, then for a POST the CSRF token. Adds the
/// security headers to whatever is answered.
pub async fn guard(
    State(portal): State<std::sync::Arc<Portal>>,
    request: Request,
    next: Next,
) -> Response {
    let lang = language(request.headers(), request.uri().query());
    let mut response = match check(&portal, request, lang).await {
        Ok((request, csrf)) => {
            let mut request = request;
            if let Some(csrf) = csrf {
                request.extensions_mut().insert(Csrf(csrf));
            }
            request.extensions_mut().insert(lang);
            next.run(request).await
        }
        Err(refused) => refused,
    };
    secure_headers(response.headers_mut());
    response
}

async fn check(
    portal: &Portal,
    request: Request,
    lang: Lang,
) -> Result<(Request, Option<String>), Response> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !portal.hosts.iter().any(|allowed| allowed == host) {
        return Err(refuse(StatusCode::FORBIDDEN, "portal.host", lang, portal));
    }
    let path = request.uri().path();
    if PUBLIC_PATHS.contains(&path) {
        return Ok((request, None));
    }
    if path == "/" && request.method() == Method::GET {
        // The token exchange answers the request itself (see `enter`).
        return Ok((request, None));
    }
    let csrf = {
        let value = cookie(request.headers(), &portal.cookie_name);
        lock(&portal.secrets).check(value, portal.idle)
    };
    let Some(csrf) = csrf else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "portal.unauthorized",
            lang,
            portal,
        ));
    };
    if request.method() == Method::POST {
        if !same_origin(request.headers(), &portal.hosts) {
            return Err(refuse(StatusCode::FORBIDDEN, "portal.csrf", lang, portal));
        }
        // The form body is read here, bounded, checked, and handed on.
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, super::FORM_BYTES_MAX)
            .await
            .map_err(|_| {
                refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "portal.bad_form",
                    lang,
                    portal,
                )
            })?;
        let sent = form_field(&bytes, "csrf");
        if !sent.is_some_and(|sent| same_secret(&sent, &csrf)) {
            return Err(refuse(StatusCode::FORBIDDEN, "portal.csrf", lang, portal));
        }
        return Ok((Request::from_parts(parts, Body::from(bytes)), Some(csrf)));
    }
    Ok((request, Some(csrf)))
}

/// A POST's `Origin` (or, failing that, `Sec-Fetch-Site`) must say it
/// came from the portal's own pages; a request with neither is judged by
/// its CSRF token alone.
fn same_origin(headers: &HeaderMap, hosts: &[String]) -> bool {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if site.is_some_and(|site| site != "same-origin" && site != "none") {
        return false;
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        // An opaque origin (a sandboxed frame, some referrer policies) is
        // only taken from a browser that says the request is same-origin.
        Some("null") => site == Some("same-origin"),
        Some(origin) => origin
            .strip_prefix("http://")
            .is_some_and(|host| hosts.iter().any(|h| h == host)),
        None => true,
    }
}

/// One field of a URL-encoded form.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A refusal page with its stable code.
pub fn refuse(status: StatusCode, code: &'static str, lang: Lang, portal: &Portal) -> Response {
    let words = lang.words();
    let message = match code {
        "portal.host" => words.bad_host,
        "portal.csrf" => words.bad_csrf,
        "portal.unauthorized" => words.unauthorized,
        _ => words.error_title,
    };
    let page = pages::error_page(&portal.view(lang, None), code, message, None);
    (status, page).into_response()
}

/// The headers every answer carries.
pub fn secure_headers(headers: &mut HeaderMap) {
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Not `no-referrer`: under it Chromium sends `Origin: null` on the
        // portal's own form posts. `same-origin` still sends nothing to
        // any other site.
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// Locks a mutex, recovering from a panicked holder (the secrets stay
/// consistent: every change is one assignment).
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_exchanged_once_and_the_session_expires() {
        let mut secrets = Secrets::new("a".repeat(64));
        assert_eq!(secrets.exchange(&"b".repeat(64)), None);
        let id = secrets.exchange(&"a".repeat(64));
        assert!(id.is_some());
        assert_eq!(
            secrets.exchange(&"a".repeat(64)),
            None,
            "a token works once"
        );
        let idle = Duration::from_secs(60);
        assert!(secrets.check(id.as_deref(), idle).is_some());
        assert!(secrets.check(Some("wrong"), idle).is_none());
        assert!(secrets.check(None, idle).is_none());
        assert!(secrets.check(id.as_deref(), Duration::ZERO).is_none());
        assert!(secrets.ended, "an idle session ends");
        assert!(secrets.check(id.as_deref(), idle).is_none());
    }

    #[test]
    fn cookies_and_form_fields_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("vault_portal_1=x; vault_portal_12=y"),
        );
        assert_eq!(cookie(&headers, "vault_portal_12"), Some("y"));
        assert_eq!(cookie(&headers, "vault_portal_1"), Some("x"));
        assert_eq!(cookie(&headers, "vault_portal_2"), None);
        assert_eq!(
            form_field(b"csrf=ab&max_uses=2", "csrf").as_deref(),
            Some("ab")
        );
        assert_eq!(form_field(b"xcsrf=ab", "csrf"), None);
    }

    #[test]
    fn a_post_from_another_origin_is_not_same_origin() {
        let hosts = vec!["127.0.0.1:8080".to_string()];
        let mut headers = HeaderMap::new();
        assert!(same_origin(&headers, &hosts));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&headers, &hosts));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&headers, &hosts));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers, &hosts), "an opaque origin alone");
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(
            same_origin(&headers, &hosts),
            "opaque, but the browser says same-origin"
        );
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&headers, &hosts));
        let mut headers = HeaderMap::new();
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&headers, &hosts));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(!same_origin(&headers, &hosts), "the browser's word wins");
    }
}
