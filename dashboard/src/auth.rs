//! Who may see and steer the dashboard: an [`Authorizer`] (bearer token,
//! basic authentication, or a closure of the application's), or, without
//! one, callers on the loopback interface only. Writes are checked for a
//! same-origin request and a CSRF token besides.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::{header, request::Parts, HeaderMap};
use base64::Engine as _;
use subtle::ConstantTimeEq as _;

/// What a caller may do, as an [`Authorizer`] decides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// See everything and act: trigger, pause, resume, retry, discard.
    /// Holds who it is, for the audit log.
    Full(String),
    /// See everything, act on nothing. Holds who it is.
    ReadOnly(String),
    /// Nothing: `403 Forbidden`.
    Forbidden,
}

type Decide = dyn Fn(&Parts) -> Access + Send + Sync;

/// How the dashboard authenticates its callers.
///
/// Without one, the dashboard answers only requests from the loopback
/// interface whose `Host` names a loopback address (a page on another
/// site cannot reach it through DNS rebinding), and it refuses to listen
/// on any other address.
#[derive(Clone)]
pub struct Authorizer {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Bearer { token: Arc<[u8]> },
    Basic { user: Arc<str>, password: Arc<[u8]> },
    Custom(Arc<Decide>),
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Bearer { .. } => "bearer",
            Kind::Basic { .. } => "basic",
            Kind::Custom(_) => "custom",
        };
        f.debug_struct("Authorizer").field("kind", &kind).finish()
    }
}

impl Authorizer {
    /// Full access for a request with `Authorization: Bearer <token>`
    /// (who: `bearer`); others get `401`. Compared in constant time.
    pub fn bearer(token: impl Into<String>) -> Authorizer {
        let token: String = token.into();
        Authorizer {
            kind: Kind::Bearer {
                token: token.into_bytes().into(),
            },
        }
    }

    /// Full access for HTTP basic authentication as `user` with
    /// `password` (who: the user); others get `401`, which makes a browser
    /// ask. Use it over TLS (a proxy in front) beyond loopback.
    pub fn basic(user: impl Into<String>, password: impl Into<String>) -> Authorizer {
        let user: String = user.into();
        let password: String = password.into();
        Authorizer {
            kind: Kind::Basic {
                user: user.into(),
                password: password.into_bytes().into(),
            },
        }
    }

    /// The application decides from the request's head (its headers: a
    /// session cookie, a header a proxy set): full access, read-only or
    /// forbidden, with who it is.
    ///
    /// ```
    /// use hosted_dashboard::{Access, Authorizer};
    ///
    /// let authorizer = Authorizer::custom(|request| {
    ///     match request.headers.get("x-user").and_then(|v| v.to_str().ok()) {
    ///         Some("alice") => Access::Full("alice".into()),
    ///         Some(user) => Access::ReadOnly(user.into()),
    ///         None => Access::Forbidden,
    ///     }
    /// });
    /// # drop(authorizer);
    /// ```
    pub fn custom(decide: impl Fn(&Parts) -> Access + Send + Sync + 'static) -> Authorizer {
        Authorizer {
            kind: Kind::Custom(Arc::new(decide)),
        }
    }
}

/// What the dashboard makes of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allowed {
        who: String,
        write: bool,
    },
    /// `401`, with this `WWW-Authenticate` challenge.
    Unauthenticated(&'static str),
    /// `403`, with the reason.
    Forbidden(String),
}

pub(crate) fn decide(authorizer: Option<&Authorizer>, parts: &Parts) -> Verdict {
    let Some(authorizer) = authorizer else {
        return loopback_only(parts);
    };
    match &authorizer.kind {
        Kind::Bearer { token } => match credentials(&parts.headers, "Bearer ") {
            Some(given) if bool::from(given.as_bytes().ct_eq(token)) => Verdict::Allowed {
                who: "bearer".to_owned(),
                write: true,
            },
            _ => Verdict::Unauthenticated("Bearer realm=\"hosted\""),
        },
        Kind::Basic { user, password } => {
            let given = credentials(&parts.headers, "Basic ").and_then(|encoded| {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .ok()?;
                String::from_utf8(decoded).ok()
            });
            let matches = given
                .as_deref()
                .and_then(|pair| pair.split_once(':'))
                .is_some_and(|(u, p)| {
                    // Both compared, whatever the first gave: the time
                    // taken tells nothing of which was wrong.
                    let user_ok = u.as_bytes().ct_eq(user.as_bytes());
                    let password_ok = p.as_bytes().ct_eq(password);
                    bool::from(user_ok & password_ok)
                });
            if matches {
                Verdict::Allowed {
                    who: user.to_string(),
                    write: true,
                }
            } else {
                Verdict::Unauthenticated("Basic realm=\"hosted\", charset=\"UTF-8\"")
            }
        }
        Kind::Custom(decide) => match decide(parts) {
            Access::Full(who) => Verdict::Allowed { who, write: true },
            Access::ReadOnly(who) => Verdict::Allowed { who, write: false },
            Access::Forbidden => Verdict::Forbidden("you may not see this dashboard".to_owned()),
        },
    }
}

fn credentials<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (given, rest) = value.split_at_checked(scheme.len())?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// Without an authorizer: the peer must be on loopback, and the `Host`
/// it asked for too.
fn loopback_only(parts: &Parts) -> Verdict {
    let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
        return Verdict::Forbidden(
            "the dashboard has no authorizer, and this server does not say where requests come from: serve the router with `into_make_service_with_connect_info::<SocketAddr>()` (hosted::web::WebServer does), or give the dashboard an authorizer".to_owned(),
        );
    };
    if !peer.ip().is_loopback() {
        return Verdict::Forbidden(format!(
            "the dashboard has no authorizer and answers loopback callers only, not {}",
            peer.ip()
        ));
    }
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !is_loopback_host(host) {
        return Verdict::Forbidden(format!(
            "the dashboard has no authorizer and answers requests for a loopback address only, not for `{host}`"
        ));
    }
    Verdict::Allowed {
        who: format!("local ({peer})"),
        write: true,
    }
}

/// Whether a `Host` header (`name[:port]`) names loopback.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a write comes from a page of the dashboard's own origin:
/// `Sec-Fetch-Site` where the browser sends it, else `Origin` (or
/// `Referer`) against `Host`. A client that sends none of them (curl, a
/// script) is not a browser that a page elsewhere could steer; the CSRF
/// token still applies to it.
pub(crate) fn same_origin(headers: &HeaderMap) -> Result<(), String> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        return match site {
            "same-origin" | "none" => Ok(()),
            other => Err(format!("a cross-origin request (Sec-Fetch-Site: {other})")),
        };
    }
    let host = get("host").unwrap_or("");
    let origin = get("origin").or_else(|| get("referer"));
    match origin {
        None => Ok(()),
        Some(origin) => {
            let authority = origin
                .split_once("://")
                .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
            if authority.eq_ignore_ascii_case(host) {
                Ok(())
            } else {
                Err(format!("a cross-origin request (from {origin})"))
            }
        }
    }
}

/// A fresh CSRF token: 128 random bits, hex.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 16];
    // The OS's generator; without one the dashboard cannot protect its
    // forms, and no write would be safe to accept.
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) const CSRF_COOKIE: &str = "hosted_csrf";

/// The CSRF token of the request's cookie, if it has a well-formed one.
pub(crate) fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == CSRF_COOKIE)
        .map(|(_, value)| value)
        .filter(|value| value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether the form's token is the cookie's (the double-submit check: a
/// page elsewhere can make the browser send the cookie, never read it).
pub(crate) fn token_matches(cookie: Option<&str>, form: &str) -> bool {
    cookie.is_some_and(|cookie| bool::from(cookie.as_bytes().ct_eq(form.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)], peer: Option<&str>) -> Parts {
        let mut request = axum::http::Request::builder().uri("/");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        if let Some(peer) = peer {
            parts
                .extensions
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        }
        parts
    }

    #[test]
    fn without_an_authorizer_only_loopback_callers_for_loopback_hosts_are_let_in() {
        let local = parts(&[("host", "127.0.0.1:9000")], Some("127.0.0.1:5000"));
        assert!(matches!(
            decide(None, &local),
            Verdict::Allowed { write: true, .. }
        ));
        let v6 = parts(&[("host", "[::1]:9000")], Some("[::1]:5000"));
        assert!(matches!(decide(None, &v6), Verdict::Allowed { .. }));
        let named = parts(&[("host", "localhost:9000")], Some("127.0.0.1:5000"));
        assert!(matches!(decide(None, &named), Verdict::Allowed { .. }));
        let remote = parts(&[("host", "127.0.0.1:9000")], Some("10.0.0.7:5000"));
        assert!(
            matches!(decide(None, &remote), Verdict::Forbidden(why) if why.contains("10.0.0.7"))
        );
        let rebound = parts(&[("host", "evil.example:9000")], Some("127.0.0.1:5000"));
        assert!(
            matches!(decide(None, &rebound), Verdict::Forbidden(why) if why.contains("evil.example"))
        );
        let unknown = parts(&[("host", "127.0.0.1")], None);
        assert!(
            matches!(decide(None, &unknown), Verdict::Forbidden(why) if why.contains("connect_info"))
        );
    }

    #[test]
    fn bearer_and_basic_credentials_are_checked() {
        let bearer = Authorizer::bearer("s3cret");
        let ok = parts(&[("authorization", "Bearer s3cret")], None);
        assert!(matches!(
            decide(Some(&bearer), &ok),
            Verdict::Allowed { .. }
        ));
        for wrong in ["Bearer s3cre", "Bearer s3cret2", "Basic s3cret", ""] {
            let request = parts(&[("authorization", wrong)], None);
            assert!(
                matches!(decide(Some(&bearer), &request), Verdict::Unauthenticated(c) if c.starts_with("Bearer")),
                "{wrong:?}"
            );
        }
        let basic = Authorizer::basic("admin", "pa:ss");
        let encoded = base64::engine::general_purpose::STANDARD.encode("admin:pa:ss");
        let ok = parts(&[("authorization", &format!("Basic {encoded}"))], None);
        assert_eq!(
            decide(Some(&basic), &ok),
            Verdict::Allowed {
                who: "admin".into(),
                write: true
            }
        );
        let wrong = base64::engine::general_purpose::STANDARD.encode("admin:pass");
        let bad = parts(&[("authorization", &format!("Basic {wrong}"))], None);
        assert!(matches!(
            decide(Some(&basic), &bad),
            Verdict::Unauthenticated(_)
        ));
        let garbage = parts(&[("authorization", "Basic !!!")], None);
        assert!(matches!(
            decide(Some(&basic), &garbage),
            Verdict::Unauthenticated(_)
        ));
    }

    #[test]
    fn a_custom_authorizer_grants_full_read_only_or_nothing() {
        let authorizer = Authorizer::custom(|parts| match parts.headers.get("x-user") {
            Some(v) if v == "alice" => Access::Full("alice".into()),
            Some(_) => Access::ReadOnly("guest".into()),
            None => Access::Forbidden,
        });
        let alice = parts(&[("x-user", "alice")], None);
        assert_eq!(
            decide(Some(&authorizer), &alice),
            Verdict::Allowed {
                who: "alice".into(),
                write: true
            }
        );
        let bob = parts(&[("x-user", "bob")], None);
        assert_eq!(
            decide(Some(&authorizer), &bob),
            Verdict::Allowed {
                who: "guest".into(),
                write: false
            }
        );
        assert!(matches!(
            decide(Some(&authorizer), &parts(&[], None)),
            Verdict::Forbidden(_)
        ));
    }

    #[test]
    fn writes_from_another_origin_are_refused() {
        let headers = |pairs: &[(&str, &str)]| parts(pairs, None).headers;
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])).is_ok());
        assert!(same_origin(&headers(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-site")])).is_err());
        let same = [
            ("host", "127.0.0.1:9000"),
            ("origin", "http://127.0.0.1:9000"),
        ];
        assert!(same_origin(&headers(&same)).is_ok());
        let other = [
            ("host", "127.0.0.1:9000"),
            ("origin", "http://127.0.0.1:9001"),
        ];
        assert!(same_origin(&headers(&other)).is_err());
        let referer = [("host", "a:1"), ("referer", "http://b:1/page")];
        assert!(same_origin(&headers(&referer)).is_err());
        assert!(same_origin(&headers(&[("host", "a:1")])).is_ok());
    }

    #[test]
    fn the_csrf_token_is_the_cookies() {
        let token = new_token();
        assert_eq!(token.len(), 32);
        assert_ne!(token, new_token());
        let cookie = format!("other=1; {CSRF_COOKIE}={token}");
        let headers = parts(&[("cookie", &cookie)], None).headers;
        assert_eq!(cookie_token(&headers), Some(token.as_str()));
        assert!(token_matches(cookie_token(&headers), &token));
        assert!(!token_matches(cookie_token(&headers), &new_token()));
        assert!(!token_matches(None, &token));
        let short = parts(&[("cookie", "hosted_csrf=abc")], None).headers;
        assert_eq!(cookie_token(&short), None);
    }
}
