//! The dashboard of a host on its own, through its router: what each page
//! shows, the actions and what they do, and who may do them.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Utc};
use hosted::testing::{TestClock, TestHost};
use hosted::{Host, Job, Run};
use hosted_dashboard::{Access, Authorizer, Dashboard};
use tower::ServiceExt as _;

fn t0() -> DateTime<Utc> {
    // Four days before Europe/Berlin moves its clocks forward (29 March).
    "2026-03-25T12:00:00Z".parse().unwrap()
}

async fn host(clock: &TestClock) -> TestHost {
    let host = Host::builder()
        .without_registered()
        .clock(clock)
        .job(Job::every("tick", Duration::from_secs(60), || async {}))
        .job(Job::every(
            "flaky",
            Duration::from_secs(30),
            |run: Run| async move {
                if !run.number().is_multiple_of(2) {
                    Err(format!("the upstream said no (run {})", run.number()))
                } else {
                    Ok(())
                }
            },
        ))
        .job(Job::cron("nightly", "0 30 2 * * *", || async {}).tz("Europe/Berlin"))
        .job(Job::service(
            "listener",
            |token: hosted::CancellationToken| async move {
                token.cancelled().await;
            },
        ))
        .build()
        .unwrap();
    TestHost::start(host).await
}

struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

/// A request for a loopback host.
fn request(method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "127.0.0.1:9000")
}

async fn send(router: &Router, request: Request<Body>, peer: Option<&str>) -> Response {
    let mut request = request;
    if let Some(peer) = peer {
        request
            .extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    }
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    Response {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

const LOCAL: Option<&str> = Some("127.0.0.1:40000");

async fn get(router: &Router, uri: &str) -> Response {
    let request = request("GET", uri).body(Body::empty()).unwrap();
    send(router, request, LOCAL).await
}

/// The CSRF cookie a page sets.
fn csrf_of(response: &Response) -> String {
    let cookie = response
        .headers
        .get(header::SET_COOKIE)
        .expect("a page sets the CSRF cookie")
        .to_str()
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

async fn post(router: &Router, uri: &str, csrf: &str, form: &str) -> Response {
    let request = request("POST", uri)
        .header(header::COOKIE, format!("hosted_csrf={csrf}"))
        .header(header::ORIGIN, "http://127.0.0.1:9000")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={csrf}{form}")))
        .unwrap();
    send(router, request, LOCAL).await
}

#[tokio::test(start_paused = true)]
async fn the_pages_show_jobs_their_schedules_runs_and_failures() {
    let clock = TestClock::at(t0());
    let test = host(&clock).await;
    // `flaky` runs at 0, 30 and 60 s; runs 1 and 3 fail.
    test.advance(Duration::from_secs(65)).await;
    let router = Dashboard::with_source(test.handle())
        .title("billing")
        .router();

    let overview = get(&router, "/").await;
    assert_eq!(overview.status, StatusCode::OK);
    let body = &overview.body;
    assert!(body.contains("<title>Overview · billing</title>"), "{body}");
    // Three scheduled jobs; `flaky` failed its last run (run 3 at 60 s).
    assert!(body.contains("Scheduled jobs"), "{body}");
    assert!(body.contains("the upstream said no (run 3)"), "{body}");
    assert!(body.contains("listener"), "{body}");

    let jobs = get(&router, "/jobs").await;
    let body = &jobs.body;
    assert!(body.contains("Jobs 1–4 of 4"), "{body}");
    assert!(
        body.contains("every 1m") || body.contains("every 60s"),
        "{body}"
    );
    assert!(body.contains("Europe/Berlin"), "{body}");
    // The cron job's next five fires: 02:30 local on the 26th, 27th and
    // 28th (+01:00), then the 29th, when 02:30 does not exist and the run
    // comes at 03:00 +02:00: the offset changed, marked.
    assert!(body.contains("2026-03-26 02:30:00 +01:00"), "{body}");
    assert!(body.contains("2026-03-29 03:00:00 +02:00"), "{body}");
    assert_eq!(body.matches(">DST<").count(), 1, "{body}");

    let found = get(&router, "/jobs?q=FLA").await;
    assert!(found.body.contains("Jobs 1–1 of 1"), "{}", found.body);
    assert!(found.body.contains("/jobs/flaky"), "{}", found.body);
    let none = get(&router, "/jobs?q=nothing-like-it").await;
    assert!(none.body.contains("No job matches."), "{}", none.body);

    let flaky = get(&router, "/jobs/flaky").await;
    let body = &flaky.body;
    assert_eq!(flaky.status, StatusCode::OK);
    // Newest first, the odd ones failed.
    let run3 = body.find("the upstream said no (run 3)").expect(body);
    let run1 = body.find("the upstream said no (run 1)").expect(body);
    assert!(run3 < run1, "newest first");
    assert!(body.contains("Run now") && body.contains("Pause"), "{body}");

    let services = get(&router, "/services").await;
    assert!(services.body.contains("listener"), "{}", services.body);
    assert!(services.body.contains(">running<"), "{}", services.body);

    let missing = get(&router, "/jobs/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("no job named `nope`"));

    // The refresh script's request gets the content alone.
    let request = request("GET", "/jobs")
        .header("x-hosted-fragment", "1")
        .body(Body::empty())
        .unwrap();
    let fragment = send(&router, request, LOCAL).await;
    assert!(!fragment.body.contains("<html"), "{}", fragment.body);
    assert!(fragment.body.contains("<h1>Jobs</h1>"), "{}", fragment.body);
    let _ = test.stop().await;
}

#[tokio::test(start_paused = true)]
async fn trigger_pause_and_resume_act_on_the_host_and_are_audited() {
    let clock = TestClock::at(t0());
    let test = host(&clock).await;
    let router = Dashboard::with_source(test.handle()).router();
    let page = get(&router, "/jobs/tick").await;
    let csrf = csrf_of(&page);
    let before = test.status("tick").runs;

    let triggered = post(&router, "/jobs/tick/trigger", &csrf, "").await;
    assert_eq!(triggered.status, StatusCode::SEE_OTHER);
    let location = triggered.headers[header::LOCATION].to_str().unwrap();
    assert!(location.starts_with("/jobs/tick?notice="), "{location}");
    let shown = get(&router, location).await;
    assert!(shown.body.contains("started run"), "{}", shown.body);
    // A notice is named by a key the server made: a link cannot put words
    // on the page.
    let forged = get(
        &router,
        "/jobs/tick?notice=0123&done=Your%20session%20expired",
    )
    .await;
    assert!(!forged.body.contains("session expired"), "{}", forged.body);
    test.advance(Duration::from_millis(10)).await;
    assert_eq!(test.status("tick").runs, before + 1);

    let paused = post(&router, "/jobs/tick/pause", &csrf, "").await;
    assert_eq!(paused.status, StatusCode::SEE_OTHER);
    assert!(test.status("tick").paused);
    let page = get(&router, "/jobs/tick").await;
    assert!(
        page.body.contains(">paused<") && page.body.contains("Resume"),
        "{}",
        page.body
    );
    post(&router, "/jobs/tick/resume", &csrf, "").await;
    assert!(!test.status("tick").paused);

    // A refusal comes back as the page's error notice.
    let refused = post(&router, "/jobs/listener/trigger", &csrf, "").await;
    let location = refused.headers[header::LOCATION].to_str().unwrap();
    let shown = get(&router, location).await;
    assert!(shown.body.contains("role=\"alert\""), "{}", shown.body);
    assert!(shown.body.contains("not a scheduled job"), "{}", shown.body);

    let audit = get(&router, "/audit").await;
    for action in ["trigger", "pause", "resume"] {
        assert!(
            audit.body.contains(&format!("<td>{action}</td>")),
            "{}",
            audit.body
        );
    }
    assert!(
        audit.body.contains("local (127.0.0.1:40000)"),
        "{}",
        audit.body
    );
    let _ = test.stop().await;
}

#[tokio::test(start_paused = true)]
async fn writes_need_the_csrf_token_and_the_dashboards_own_origin() {
    let clock = TestClock::at(t0());
    let test = host(&clock).await;
    let router = Dashboard::with_source(test.handle()).router();
    let csrf = csrf_of(&get(&router, "/").await);
    let before = test.status("tick").runs;

    // The cookie without the form's token (a page elsewhere cannot read it).
    let forged = post(&router, "/jobs/tick/trigger", &csrf, "&x=1").await;
    assert_eq!(
        forged.status,
        StatusCode::SEE_OTHER,
        "the right token passes"
    );
    let wrong = request("POST", "/jobs/tick/trigger")
        .header(header::COOKIE, format!("hosted_csrf={csrf}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("csrf=00000000000000000000000000000000"))
        .unwrap();
    let wrong = send(&router, wrong, LOCAL).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert!(wrong.body.contains("CSRF"), "{}", wrong.body);

    for (name, value) in [
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let cross = request("POST", "/jobs/tick/trigger")
            .header(header::COOKIE, format!("hosted_csrf={csrf}"))
            .header(name, value)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={csrf}")))
            .unwrap();
        let cross = send(&router, cross, LOCAL).await;
        assert_eq!(cross.status, StatusCode::FORBIDDEN, "{name}");
        assert!(cross.body.contains("cross-origin"), "{}", cross.body);
    }
    test.advance(Duration::from_millis(10)).await;
    assert_eq!(
        test.status("tick").runs,
        before + 1,
        "only the one with the token ran"
    );
    let _ = test.stop().await;
}

#[tokio::test(start_paused = true)]
async fn without_an_authorizer_only_loopback_callers_get_in() {
    let clock = TestClock::at(t0());
    let test = host(&clock).await;
    let router = Dashboard::with_source(test.handle()).router();
    let remote = request("GET", "/").body(Body::empty()).unwrap();
    let remote = send(&router, remote, Some("192.0.2.7:5000")).await;
    assert_eq!(remote.status, StatusCode::FORBIDDEN);
    assert!(remote.body.contains("192.0.2.7"), "{}", remote.body);
    let unknown = request("GET", "/").body(Body::empty()).unwrap();
    let unknown = send(&router, unknown, None).await;
    assert_eq!(unknown.status, StatusCode::FORBIDDEN);
    let rebound = Request::get("/")
        .header(header::HOST, "attacker.example")
        .body(Body::empty())
        .unwrap();
    let rebound = send(&router, rebound, LOCAL).await;
    assert_eq!(rebound.status, StatusCode::FORBIDDEN);
    let _ = test.stop().await;
}

#[tokio::test(start_paused = true)]
async fn credentials_are_required_and_read_only_access_cannot_act() {
    let clock = TestClock::at(t0());
    let test = host(&clock).await;
    let bearer = Dashboard::with_source(test.handle())
        .authorizer(Authorizer::bearer("s3cret"))
        .router();
    let anonymous = Request::get("/").body(Body::empty()).unwrap();
    let anonymous = send(&bearer, anonymous, Some("192.0.2.7:5000")).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.headers[header::WWW_AUTHENTICATE],
        "Bearer realm=\"hosted\""
    );
    let signed = Request::get("/")
        .header(header::AUTHORIZATION, "Bearer s3cret")
        .body(Body::empty())
        .unwrap();
    let signed = send(&bearer, signed, Some("192.0.2.7:5000")).await;
    assert_eq!(signed.status, StatusCode::OK);

    let custom = Dashboard::with_source(test.handle())
        .authorizer(Authorizer::custom(|parts| {
            match parts.headers.get("x-user") {
                Some(user) if user == "ops" => Access::Full("ops".into()),
                Some(_) => Access::ReadOnly("viewer".into()),
                None => Access::Forbidden,
            }
        }))
        .router();
    let viewer = Request::get("/jobs/tick")
        .header("x-user", "guest")
        .body(Body::empty())
        .unwrap();
    let viewer = send(&custom, viewer, None).await;
    assert_eq!(viewer.status, StatusCode::OK);
    assert!(viewer.body.contains("read-only"), "{}", viewer.body);
    assert!(
        viewer.body.contains("disabled"),
        "buttons are disabled: {}",
        viewer.body
    );
    let csrf = csrf_of(&viewer);
    let act = Request::post("/jobs/tick/pause")
        .header("x-user", "guest")
        .header(header::COOKIE, format!("hosted_csrf={csrf}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={csrf}")))
        .unwrap();
    let act = send(&custom, act, None).await;
    assert_eq!(act.status, StatusCode::FORBIDDEN);
    assert!(act.body.contains("read-only"), "{}", act.body);
    assert!(!test.status("tick").paused);
    let nobody = Request::get("/").body(Body::empty()).unwrap();
    assert_eq!(
        send(&custom, nobody, None).await.status,
        StatusCode::FORBIDDEN
    );
    let _ = test.stop().await;
}

#[tokio::test(start_paused = true)]
async fn every_response_carries_the_security_headers_and_links_follow_the_mount() {
    let clock = TestClock::at(t0());
    let test = host(&clock).await;
    let app = Router::new().nest(
        "/ops/dashboard",
        Dashboard::with_source(test.handle()).router(),
    );
    let page = get(&app, "/ops/dashboard/jobs").await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(page.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(page.headers[header::REFERRER_POLICY], "same-origin");
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
    assert!(
        page.body.contains("href=\"/ops/dashboard/jobs/tick\""),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("src=\"/ops/dashboard/assets/app.js\""),
        "{}",
        page.body
    );
    let cookie = page.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("Path=/ops/dashboard"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let proxied = request("GET", "/ops/dashboard")
        .header("x-forwarded-proto", "https")
        .body(Body::empty())
        .unwrap();
    let proxied = send(&app, proxied, LOCAL).await;
    let cookie = proxied.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.ends_with("; Secure"), "behind TLS: {cookie}");
    let refused = Request::get("/ops/dashboard").body(Body::empty()).unwrap();
    let refused = send(&app, refused, Some("192.0.2.7:1")).await;
    assert_eq!(
        refused.headers[header::X_FRAME_OPTIONS],
        "DENY",
        "refusals too"
    );
    let css = get(&app, "/ops/dashboard/assets/app.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    let _ = test.stop().await;
}

#[tokio::test(start_paused = true)]
async fn names_are_escaped() {
    let clock = TestClock::at(t0());
    let host = Host::builder()
        .without_registered()
        .clock(&clock)
        .job(Job::every(
            "<script>alert(1)</script>",
            Duration::from_secs(60),
            || async { Err::<(), _>("<img src=x onerror=alert(2)>".to_owned()) },
        ))
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(1)).await;
    let router = Dashboard::with_source(test.handle()).router();
    for page in ["/", "/jobs", "/jobs/%3Cscript%3Ealert(1)%3C%2Fscript%3E"] {
        let body = get(&router, page).await.body;
        assert!(!body.contains("<script>alert"), "{page}: {body}");
        assert!(!body.contains("<img src=x"), "{page}: {body}");
        assert!(
            body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}: {body}"
        );
    }
    let _ = test.stop().await;
}

/// A source of the application's own: the dashboard shows what it gives,
/// estimates marked as such, and carries out its actions.
struct Fixed;

impl hosted_dashboard::Source for Fixed {
    fn summary(
        &self,
    ) -> hosted_dashboard::BoxFuture<
        '_,
        Result<hosted_dashboard::Summary, hosted_dashboard::SourceError>,
    > {
        Box::pin(async { Ok(hosted_dashboard::Summary::default()) })
    }

    fn jobs<'a>(
        &'a self,
        _: &'a hosted_dashboard::JobQuery,
    ) -> hosted_dashboard::BoxFuture<
        'a,
        Result<hosted_dashboard::JobPage, hosted_dashboard::SourceError>,
    > {
        Box::pin(async { Ok(hosted_dashboard::JobPage::default()) })
    }

    fn job<'a>(
        &'a self,
        _: &'a str,
        _: usize,
    ) -> hosted_dashboard::BoxFuture<
        'a,
        Result<Option<hosted_dashboard::JobDetail>, hosted_dashboard::SourceError>,
    > {
        Box::pin(async { Ok(None) })
    }

    fn failures(
        &self,
        _: usize,
    ) -> hosted_dashboard::BoxFuture<
        '_,
        Result<Vec<(String, hosted_dashboard::RunView)>, hosted_dashboard::SourceError>,
    > {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn services(
        &self,
    ) -> hosted_dashboard::BoxFuture<
        '_,
        Result<Vec<hosted_dashboard::ServiceView>, hosted_dashboard::SourceError>,
    > {
        Box::pin(async {
            Err(hosted_dashboard::SourceError::failed(
                "the registry is down",
            ))
        })
    }

    fn queues(
        &self,
    ) -> hosted_dashboard::BoxFuture<
        '_,
        Result<Vec<hosted_dashboard::QueueView>, hosted_dashboard::SourceError>,
    > {
        Box::pin(async {
            let queue = hosted_dashboard::QueueView {
                name: "imports".into(),
                durable: true,
                depth: 1_234_000,
                estimated: true,
                ..hosted_dashboard::QueueView::default()
            };
            Ok(vec![queue])
        })
    }

    fn has_items(&self) -> bool {
        true
    }

    fn act<'a>(
        &'a self,
        action: &'a hosted_dashboard::Action,
    ) -> hosted_dashboard::BoxFuture<'a, Result<String, hosted_dashboard::SourceError>> {
        Box::pin(async move { Ok(format!("{} {}", action.verb(), action.target())) })
    }
}

#[tokio::test]
async fn a_source_of_its_own_is_shown_with_its_estimates_and_its_errors() {
    let router = Dashboard::with_source(Fixed).router();
    let queues = get(&router, "/queues").await;
    assert_eq!(queues.status, StatusCode::OK);
    assert!(queues.body.contains("≈ 1234000"), "{}", queues.body);
    assert!(
        queues.body.contains("estimated from a sample"),
        "{}",
        queues.body
    );
    let services = get(&router, "/services").await;
    assert_eq!(services.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        services.body.contains("the registry is down"),
        "{}",
        services.body
    );
    let csrf = csrf_of(&queues);
    let retried = post(&router, "/dead/retry", &csrf, "&queue=imports").await;
    let shown = get(&router, retried.headers[header::LOCATION].to_str().unwrap()).await;
    assert!(shown.body.contains("retry queue imports"), "{}", shown.body);
    let bad = post(&router, "/dead/discard", &csrf, "&id=twelve").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}
