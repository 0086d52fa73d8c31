//! The dashboard's routes: one small handler a page or action, each reading
//! its [`Source`](crate::Source) and handing the views to `pages.rs`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use crate::{auth, pages};
use crate::{
    Action, Caller, ItemQuery, ItemSelector, JobQuery, Shared, SourceError, AUDIT_KEPT, PAGE, RUNS,
};

/// A page, or what went wrong reading it.
pub(crate) type Page = Result<Response, Response>;

pub(crate) fn unavailable(error: SourceError) -> Response {
    pages::refusal(StatusCode::SERVICE_UNAVAILABLE, &error.to_string())
}

pub(crate) async fn overview(State(shared): State<Arc<Shared>>, caller: Caller) -> Page {
    let source = &shared.source;
    let summary = source.summary().await.map_err(unavailable)?;
    let failures = source.failures(10).await.map_err(unavailable)?;
    let services = source.services().await.map_err(unavailable)?;
    let queues = shared.with_rates(source.queues().await.map_err(unavailable)?);
    let instances = source.instances().await.map_err(unavailable)?;
    let actions = shared.actions(10).await;
    Ok(pages::overview(
        &shared,
        &caller,
        &summary,
        &failures,
        &services,
        &queues,
        &instances,
        &actions,
        source.has_items(),
    ))
}

#[derive(Deserialize)]
pub(crate) struct JobsParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: usize,
}

pub(crate) async fn jobs(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Query(params): Query<JobsParams>,
) -> Page {
    let page = params.page.max(1);
    let query = JobQuery {
        search: params.q.trim().to_owned(),
        offset: (page - 1).saturating_mul(PAGE),
        limit: PAGE,
    };
    let found = shared.source.jobs(&query).await.map_err(unavailable)?;
    Ok(pages::jobs(&shared, &caller, &query, page, PAGE, &found))
}

/// `?notice=…`: the key of what an action came to, which the page it
/// returns to shows. The text stays on the server: a link cannot make a
/// page say what its author wants.
#[derive(Deserialize)]
pub(crate) struct Notice {
    #[serde(default)]
    notice: Option<String>,
}

pub(crate) async fn job(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(notice): Query<Notice>,
) -> Page {
    match shared.source.job(&name, RUNS).await.map_err(unavailable)? {
        Some(detail) => Ok(pages::job(
            &shared,
            &caller,
            &detail,
            &shared.flash(notice.notice.as_deref()),
        )),
        None => Err(pages::refusal(
            StatusCode::NOT_FOUND,
            &format!("There is no job named `{name}`."),
        )),
    }
}

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    csrf: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    handler: Option<String>,
}

pub(crate) async fn job_action(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path((name, verb)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    Form(form): Form<ActionForm>,
) -> Page {
    if let Some(refused) = check_csrf(&headers, &form) {
        return Err(refused);
    }
    let action = match verb.as_str() {
        "trigger" => Action::Trigger(name.clone()),
        "pause" => Action::Pause(name.clone()),
        "resume" => Action::Resume(name.clone()),
        _ => return Err(not_found().await),
    };
    let result = shared.act(&caller, &action).await;
    Ok(shared.back(
        &caller,
        &format!("/jobs/{}", pages::path_segment(&name)),
        result,
    ))
}

pub(crate) async fn dead_action(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(verb): Path<String>,
    headers: axum::http::HeaderMap,
    Form(form): Form<ActionForm>,
) -> Page {
    if let Some(refused) = check_csrf(&headers, &form) {
        return Err(refused);
    }
    let id = match nonempty(form.id) {
        None => None,
        Some(id) => Some(id.trim().parse::<i64>().map_err(|_| {
            pages::refusal(
                StatusCode::BAD_REQUEST,
                &format!("`{id}` is not an item id"),
            )
        })?),
    };
    let selector = ItemSelector {
        id,
        queue: nonempty(form.queue),
        handler: nonempty(form.handler),
    };
    let action = match verb.as_str() {
        "retry" => Action::Retry(selector),
        "discard" => Action::Discard(selector),
        _ => return Err(not_found().await),
    };
    let result = shared.act(&caller, &action).await;
    Ok(shared.back(&caller, "/dead", result))
}

/// A form's or a query's field, unless it is blank.
pub(crate) fn nonempty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// The refusal of a form whose CSRF token is not its cookie's.
pub(crate) fn check_csrf(headers: &axum::http::HeaderMap, form: &ActionForm) -> Option<Response> {
    (!auth::token_matches(auth::cookie_token(headers), &form.csrf)).then(|| {
        pages::refusal(
            StatusCode::FORBIDDEN,
            "The form's CSRF token does not match this browser's: reload the page and try again.",
        )
    })
}

pub(crate) async fn services(State(shared): State<Arc<Shared>>, caller: Caller) -> Page {
    let services = shared.source.services().await.map_err(unavailable)?;
    Ok(pages::services(&shared, &caller, &services))
}

pub(crate) async fn queues(State(shared): State<Arc<Shared>>, caller: Caller) -> Page {
    let queues = shared.with_rates(shared.source.queues().await.map_err(unavailable)?);
    Ok(pages::queues(
        &shared,
        &caller,
        &queues,
        shared.source.has_items(),
    ))
}

#[derive(Deserialize)]
pub(crate) struct DeadParams {
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    handler: Option<String>,
    #[serde(default)]
    notice: Option<String>,
}

pub(crate) async fn dead_letters(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Query(params): Query<DeadParams>,
) -> Page {
    let query = ItemQuery {
        queue: nonempty(params.queue),
        handler: nonempty(params.handler),
        limit: 100,
    };
    let items = shared
        .source
        .dead_letters(&query)
        .await
        .map_err(unavailable)?;
    Ok(pages::dead_letters(
        &shared,
        &caller,
        &query,
        &items,
        shared.source.has_items(),
        &shared.flash(params.notice.as_deref()),
    ))
}

pub(crate) async fn item(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Page {
    match shared.source.item(id).await.map_err(unavailable)? {
        Some(item) => Ok(pages::item(&shared, &caller, &item)),
        None => Err(pages::refusal(
            StatusCode::NOT_FOUND,
            &format!("There is no item {id} (or it was pruned)."),
        )),
    }
}

pub(crate) async fn instances(State(shared): State<Arc<Shared>>, caller: Caller) -> Page {
    let instances = shared.source.instances().await.map_err(unavailable)?;
    Ok(pages::instances(&shared, &caller, &instances))
}

pub(crate) async fn audit(State(shared): State<Arc<Shared>>, caller: Caller) -> Page {
    let actions = shared.actions(AUDIT_KEPT).await;
    Ok(pages::audit(&shared, &caller, &actions))
}

pub(crate) async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../assets/app.css"),
    )
}

pub(crate) async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../assets/app.js"),
    )
}

pub(crate) async fn not_found() -> Response {
    pages::refusal(StatusCode::NOT_FOUND, "There is no such page.")
}
