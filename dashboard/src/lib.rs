//! A web dashboard for [`hosted`]: what runs, what failed and what waits,
//! and the actions on it (trigger, pause, resume; retry and discard dead
//! letters), as an axum [`Router`] to mount in an application, or served
//! as a service of the host on an address of its own.
//!
//! ```no_run
//! use hosted::web::WebServer;
//! use hosted::Host;
//! use hosted_dashboard::Dashboard;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // On its own address (loopback: no authorizer needed).
//! let dashboard = Dashboard::new().bind("127.0.0.1:9000").await?;
//! // Or mounted beside an application's routes.
//! let app = axum::Router::new().nest("/dashboard", Dashboard::new().router());
//! let web = WebServer::bind("127.0.0.1:3000", app).await?;
//! let report = Host::builder().service(dashboard).service(web).build()?.run().await;
//! # drop(report); Ok(()) }
//! ```
//!
//! # Pages
//!
//! - `/`: an overview: jobs by state, recent failures, services, queues,
//!   the cluster's instances, the latest actions.
//! - `/jobs`: every job with its schedule as written and in words, its
//!   zone, its next five fire times (daylight saving transitions marked),
//!   its last run and counters; searched by name and paged, fast at
//!   100,000 jobs.
//! - `/jobs/{name}`: a job's run history, with trigger, pause and resume.
//! - `/services`, `/queues`, `/instances`, `/audit`; with durable queues,
//!   `/dead` (dead letters, retried or discarded one by one or all that
//!   match a filter) and `/items/{id}` (an item's payload and attempts).
//!
//! Pages are plain HTML that read well without JavaScript; a small script
//! (served by the dashboard itself, like its style sheet: no CDN, nothing
//! to build) refreshes the page's content every two seconds while it is
//! visible.
//!
//! # What it shows
//!
//! A [`Source`]: the host that serves the dashboard by default
//! ([`Dashboard::new`], which finds the host's handle on the requests a
//! [`WebServer`] hands it), any [`HostHandle`], or with the feature
//! `postgres` a cluster and its durable queue (`ClusterSource`).
//!
//! # Security
//!
//! - Without an [`Authorizer`] the dashboard answers only callers on the
//!   loopback interface that asked for a loopback host, and
//!   [`Dashboard::bind`] refuses any other address.
//! - [`Authorizer::bearer`], [`Authorizer::basic`], or
//!   [`Authorizer::custom`] (the application's closure: full access,
//!   read-only, forbidden). A request without valid credentials gets
//!   `401`, a read-only caller's write `403`.
//! - Every write must come from the dashboard's own origin
//!   (`Sec-Fetch-Site`, or `Origin` against `Host`) and carry the CSRF
//!   token of its cookie; otherwise `403`. Writes are the forms of its
//!   pages; a script acts through the host's [`HostHandle`] or the
//!   cluster's API instead.
//! - Every response carries a strict `Content-Security-Policy`,
//!   `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff`,
//!   `Referrer-Policy: same-origin` and `Cache-Control: no-store`.
//! - Every action is logged as a `tracing` event (target
//!   `hosted_dashboard::audit`, fields `who`, `action`, `target`,
//!   `result`), kept in the dashboard's memory (the last 200), and, with a
//!   cluster, recorded in its `audit` table.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{FromRequestParts, NestedPath, Request, State};
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use hosted::web::WebServer;
use hosted::HostHandle;
use tokio::net::{lookup_host, TcpListener, ToSocketAddrs};

mod auth;
mod local;
mod pages;
#[cfg(feature = "postgres")]
mod postgres;
mod routes;
mod source;

pub use crate::auth::{Access, Authorizer};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use crate::postgres::ClusterSource;
pub use crate::source::{
    Action, AuditEntry, BoxFuture, InstanceView, ItemQuery, ItemSelector, ItemView, JobDetail,
    JobPage, JobQuery, JobView, NextFire, QueueView, RunView, ServiceView, Source, SourceError,
    Summary,
};

use crate::auth::Verdict;

/// Jobs on a page of `/jobs`.
const PAGE: usize = 50;
/// Runs on a job's page.
const RUNS: usize = 50;
/// Actions the dashboard keeps in memory.
const AUDIT_KEPT: usize = 200;

/// The dashboard: a [`Source`] to show, who may see it, and how it looks.
pub struct Dashboard {
    source: Arc<dyn Source>,
    authorizer: Option<Authorizer>,
    title: String,
    refresh: Duration,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("authorizer", &self.authorizer)
            .field("title", &self.title)
            .finish_non_exhaustive()
    }
}

impl Default for Dashboard {
    fn default() -> Dashboard {
        Dashboard::new()
    }
}

impl Dashboard {
    /// A dashboard of the host that serves it: its router, added to a
    /// [`WebServer`] service of the host (or [`bind`](Dashboard::bind)),
    /// finds the host's handle on each request.
    pub fn new() -> Dashboard {
        Dashboard::with_source(local::ServingHost::default())
    }

    /// A dashboard of `source`: a [`HostHandle`], a `ClusterSource`, or
    /// an application's own [`Source`].
    pub fn with_source(source: impl Source) -> Dashboard {
        Dashboard {
            source: Arc::new(source),
            authorizer: None,
            title: "hosted".to_owned(),
            refresh: Duration::from_secs(2),
        }
    }

    /// Who may see and steer it (see [`Authorizer`]). Without one, only
    /// loopback callers may.
    pub fn authorizer(mut self, authorizer: Authorizer) -> Dashboard {
        self.authorizer = Some(authorizer);
        self
    }

    /// The name in the page's header (default `hosted`): the service's.
    pub fn title(mut self, title: impl Into<String>) -> Dashboard {
        self.title = title.into();
        self
    }

    /// How often an open page refreshes its content (default 2 s).
    pub fn refresh_every(mut self, every: Duration) -> Dashboard {
        self.refresh = every.max(Duration::from_millis(250));
        self
    }

    /// The dashboard's routes, to mount (`Router::nest`) or serve. Its
    /// links follow where it is mounted. Nested at `/dashboard`, it
    /// serves `/dashboard` and the paths under it; the bare `/dashboard/`
    /// stays the outer router's, which can redirect it (the `queue_web`
    /// example does).
    ///
    /// Without an authorizer it answers loopback callers only, which it
    /// tells from `ConnectInfo<SocketAddr>`: serve the router with
    /// `into_make_service_with_connect_info::<SocketAddr>()` (a
    /// [`WebServer`] does), or every request is refused with `403`.
    pub fn router(self) -> Router {
        let state = Arc::new(Shared {
            source: self.source,
            authorizer: self.authorizer,
            title: self.title,
            refresh_ms: self.refresh.as_millis() as u64,
            audit: Mutex::new(VecDeque::new()),
            notices: Mutex::new(VecDeque::new()),
            throughput: Mutex::new(Vec::new()),
        });
        Router::new()
            .route("/", get(routes::overview))
            .route("/jobs", get(routes::jobs))
            .route("/jobs/{name}", get(routes::job))
            .route("/jobs/{name}/{action}", post(routes::job_action))
            .route("/services", get(routes::services))
            .route("/queues", get(routes::queues))
            .route("/dead", get(routes::dead_letters))
            .route("/dead/{action}", post(routes::dead_action))
            .route("/items/{id}", get(routes::item))
            .route("/instances", get(routes::instances))
            .route("/audit", get(routes::audit))
            .route("/assets/app.css", get(routes::css))
            .route("/assets/app.js", get(routes::js))
            .fallback(routes::not_found)
            .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
            .with_state(state)
    }

    /// Binds `addr` and returns the dashboard as a service of the host
    /// (a [`WebServer`] named `dashboard`), which starts and stops with it.
    ///
    /// # Errors
    ///
    /// An address that is not loopback without an
    /// [`authorizer`](Dashboard::authorizer) (the dashboard would be open
    /// to anyone who can reach it), or one that cannot be bound.
    pub async fn bind(self, addr: impl ToSocketAddrs) -> io::Result<WebServer> {
        let addrs: Vec<SocketAddr> = lookup_host(addr).await?.collect();
        if self.authorizer.is_none() {
            if let Some(open) = addrs.iter().find(|a| !a.ip().is_loopback()) {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "the dashboard would listen on {open}, which is not a loopback address, with no authorizer: anyone who reaches it could trigger and pause jobs. Give it one (Dashboard::authorizer(Authorizer::bearer(token)), ::basic or ::custom), or bind 127.0.0.1"
                    ),
                ));
            }
        }
        let listener = TcpListener::bind(&addrs[..]).await?;
        Ok(WebServer::new(listener, self.router())?.named("dashboard"))
    }
}

pub(crate) struct Shared {
    source: Arc<dyn Source>,
    authorizer: Option<Authorizer>,
    pub(crate) title: String,
    pub(crate) refresh_ms: u64,
    audit: Mutex<VecDeque<AuditEntry>>,
    /// What the latest actions came to, by the key their redirect names.
    notices: Mutex<VecDeque<(String, Flash)>>,
    /// The last sample of each queue's finished items, for its rate.
    throughput: Mutex<Vec<(String, u64, std::time::Instant)>>,
}

/// Who is asking, and what the page needs to link and post: set by
/// [`guard`] on every request it lets through.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) who: String,
    pub(crate) write: bool,
    pub(crate) csrf: String,
    /// Where the dashboard is mounted: `""` or `/dashboard`.
    pub(crate) base: String,
    /// Only the page's content, for the refresh script.
    pub(crate) fragment: bool,
}

impl Caller {
    pub(crate) fn link(&self, path: &str) -> String {
        if path == "/" && !self.base.is_empty() {
            self.base.clone()
        } else {
            format!("{}{path}", self.base)
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, StatusCode> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// Authenticates, checks writes, sets the CSRF cookie and the security
/// headers.
async fn guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    // `Extension(handle)`, as a `WebServer` of the host adds it.
    if let Some(host) = parts.extensions.get::<HostHandle>() {
        shared.source.attach(host);
    }
    let base = NestedPath::from_request_parts(&mut parts, &())
        .await
        .map(|nested| nested.as_str().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let assets = parts.uri.path().ends_with("/assets/app.css")
        || parts.uri.path().ends_with("/assets/app.js");
    let verdict = auth::decide(shared.authorizer.as_ref(), &parts);
    let mut response = match verdict {
        Verdict::Unauthenticated(challenge) => {
            let mut response =
                pages::refusal(StatusCode::UNAUTHORIZED, "Sign in to see this dashboard.");
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
            response
        }
        Verdict::Forbidden(why) => pages::refusal(StatusCode::FORBIDDEN, &why),
        Verdict::Allowed { who, write } => {
            let cookie = auth::cookie_token(&parts.headers).map(str::to_owned);
            let fresh = cookie.is_none();
            let csrf = cookie.unwrap_or_else(auth::new_token);
            let is_write = parts.method == axum::http::Method::POST;
            let refused = if !is_write {
                None
            } else if let Err(why) = auth::same_origin(&parts.headers) {
                Some(format!(
                    "{why}: actions are taken from the dashboard's own pages"
                ))
            } else if !write {
                Some(format!("{who} may look, not act: this access is read-only"))
            } else {
                None
            };
            if let Some(why) = refused {
                tracing::warn!(target: "hosted_dashboard::audit", who = %who, path = %parts.uri.path(), reason = %why, "action refused");
                pages::refusal(StatusCode::FORBIDDEN, &why)
            } else {
                let fragment = parts.headers.contains_key("x-hosted-fragment");
                let https = parts.uri.scheme_str() == Some("https")
                    || parts
                        .headers
                        .get("x-forwarded-proto")
                        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
                parts.extensions.insert(Caller {
                    who,
                    write,
                    csrf: csrf.clone(),
                    base: base.clone(),
                    fragment,
                });
                let mut response = next.run(Request::from_parts(parts, body)).await;
                if fresh && !is_write && !assets {
                    let path = if base.is_empty() { "/" } else { base.as_str() };
                    // Behind a proxy that ends TLS, the cookie never
                    // travels in the clear either.
                    let secure = if https { "; Secure" } else { "" };
                    if let Ok(value) = HeaderValue::from_str(&format!(
                        "{}={csrf}; Path={path}; HttpOnly; SameSite=Strict{secure}",
                        auth::CSRF_COOKIE
                    )) {
                        response.headers_mut().append(header::SET_COOKIE, value);
                    }
                }
                response
            }
        }
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !assets {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// What an action came to, shown on the page it returns to.
#[derive(Clone, Default)]
pub(crate) struct Flash {
    pub(crate) done: Option<String>,
    pub(crate) error: Option<String>,
}

/// Notices the dashboard keeps for the pages actions return to.
const NOTICES_KEPT: usize = 200;

impl Shared {
    /// Back to the page the action was taken on, which shows what came of
    /// it: the notice is kept here under a random key the address names.
    fn back(&self, caller: &Caller, path: &str, result: Result<String, SourceError>) -> Response {
        let flash = match result {
            Ok(done) => Flash {
                done: Some(done),
                error: None,
            },
            Err(error) => Flash {
                done: None,
                error: Some(error.to_string()),
            },
        };
        let key = auth::new_token();
        let mut notices = self.notices.lock().unwrap_or_else(PoisonError::into_inner);
        if notices.len() == NOTICES_KEPT {
            notices.pop_front();
        }
        notices.push_back((key.clone(), flash));
        Redirect::to(&format!("{}?notice={key}", caller.link(path))).into_response()
    }

    /// The notice kept under `key`; none for an unknown one.
    fn flash(&self, key: Option<&str>) -> Flash {
        let Some(key) = key else {
            return Flash::default();
        };
        self.notices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, flash)| flash.clone())
            .unwrap_or_default()
    }

    /// Carries out an action and audits it: a tracing event, the
    /// in-memory log, and the source's own log where it keeps one.
    async fn act(&self, caller: &Caller, action: &Action) -> Result<String, SourceError> {
        let result = self.source.act(action).await;
        let entry = AuditEntry {
            at: chrono::Utc::now(),
            who: caller.who.clone(),
            action: action.verb().to_owned(),
            target: action.target(),
            result: match &result {
                Ok(done) => format!("ok: {done}"),
                Err(error) => format!("refused: {error}"),
            },
        };
        tracing::info!(
            target: "hosted_dashboard::audit",
            who = %entry.who,
            action = %entry.action,
            target = %entry.target,
            result = %entry.result,
            "dashboard action"
        );
        if let Err(error) = self.source.record(&entry).await {
            tracing::error!(target: "hosted_dashboard::audit", who = %entry.who, action = %entry.action, %error, "the action could not be recorded in the audit table");
        }
        let mut log = self.audit.lock().unwrap_or_else(PoisonError::into_inner);
        if log.len() == AUDIT_KEPT {
            log.pop_back();
        }
        log.push_front(entry);
        result
    }

    /// The latest actions: the source's durable log where it keeps one,
    /// else this dashboard's memory.
    async fn actions(&self, limit: usize) -> Vec<AuditEntry> {
        match self.source.audit_log(limit).await {
            Ok(Some(entries)) => entries,
            Ok(None) | Err(_) => self
                .audit
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .take(limit)
                .cloned()
                .collect(),
        }
    }

    /// Each in-process queue's rate of finished items since the previous
    /// look, per second.
    fn with_rates(&self, queues: Vec<QueueView>) -> Vec<(QueueView, Option<f64>)> {
        let now = std::time::Instant::now();
        let mut samples = self
            .throughput
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        queues
            .into_iter()
            .map(|queue| {
                let Some(done) = queue.completed.map(|c| c + queue.failed.unwrap_or(0)) else {
                    return (queue, None);
                };
                let rate = match samples.iter_mut().find(|(name, _, _)| *name == queue.name) {
                    Some(sample) => {
                        let seconds = now.duration_since(sample.2).as_secs_f64();
                        let rate =
                            (seconds > 0.0).then(|| done.saturating_sub(sample.1) as f64 / seconds);
                        *sample = (queue.name.clone(), done, now);
                        rate
                    }
                    None => {
                        samples.push((queue.name.clone(), done, now));
                        None
                    }
                };
                (queue, rate)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binding_beyond_loopback_without_an_authorizer_is_refused() {
        let error = Dashboard::new().bind("0.0.0.0:0").await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        assert!(error.to_string().contains("Authorizer::bearer"), "{error}");
        let served = Dashboard::new()
            .authorizer(Authorizer::bearer("t"))
            .bind("0.0.0.0:0")
            .await;
        assert!(served.is_ok());
        assert!(Dashboard::new().bind("127.0.0.1:0").await.is_ok());
    }
}
