//! Sub-state, axum's `FromRef` idea: a job takes `State<Pool>` while the
//! host was given one `AppState`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hosted::prelude::*;
use hosted::testing::TestHost;
use hosted::{FromRef, Problem};

#[derive(Clone, Default)]
struct Pool(Arc<AtomicU64>);

#[derive(Clone, Debug, PartialEq)]
struct Settings {
    region: String,
}

#[derive(Clone, FromRef)]
struct AppState {
    pool: Pool,
    settings: Settings,
    #[from_ref(skip)]
    #[allow(dead_code)]
    secret: String,
}

fn app() -> AppState {
    AppState {
        pool: Pool::default(),
        settings: Settings {
            region: "eu-central".into(),
        },
        secret: "hunter2".into(),
    }
}

#[every("1s")]
async fn uses_pool(State(pool): State<Pool>, State(settings): State<Settings>) {
    assert_eq!(settings.region, "eu-central");
    pool.0.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(start_paused = true)]
async fn a_job_takes_a_field_of_the_app_state() {
    let state = app();
    let pool = state.pool.clone();
    let host = Host::builder()
        .only_jobs(["uses_pool"])
        .state(state)
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_secs(2)).await;
    assert_eq!(test.status("uses_pool").succeeded, 3);
    assert_eq!(
        pool.0.load(Ordering::SeqCst),
        3,
        "the sub-state shares the pool's handle"
    );
    assert!(test.stop().await.is_clean());
}

#[every("1s")]
async fn wants_the_secret(State(_secret): State<String>) {}

#[tokio::test]
async fn a_skipped_field_is_not_a_sub_state() {
    let error = Host::builder()
        .only_jobs(["wants_the_secret"])
        .state(app())
        .build()
        .unwrap_err();
    assert_eq!(
        error.problems(),
        [Problem::MissingState {
            job: "wants_the_secret".into(),
            type_name: "alloc::string::String",
        }]
    );
}

#[tokio::test]
async fn a_registered_state_wins_over_derivation() {
    let host = Host::builder()
        .only_jobs(["uses_pool"])
        .state(app())
        .state(Pool::default())
        .build();
    assert!(host.is_ok());
}

/// A second app state that also holds a pool.
#[derive(Clone, FromRef)]
struct OtherState {
    pool: Pool,
}

#[tokio::test]
async fn two_states_that_could_provide_one_sub_state_are_ambiguous() {
    let error = Host::builder()
        .only_jobs(["uses_pool"])
        .state(app())
        .state(OtherState {
            pool: Pool::default(),
        })
        .build()
        .unwrap_err();
    let [Problem::AmbiguousState { type_name, sources }] = error.problems() else {
        panic!("{error}");
    };
    assert_eq!(*type_name, "sub_state::Pool");
    let mut sources = sources.clone();
    sources.sort_unstable();
    assert_eq!(sources, ["sub_state::AppState", "sub_state::OtherState"]);
}

/// A hand-written `FromRef`, told to the builder.
#[derive(Clone)]
struct Config {
    url: String,
}

#[derive(Clone, PartialEq, Debug)]
struct Url(String);

impl FromRef<Config> for Url {
    fn from_ref(input: &Config) -> Self {
        Url(input.url.clone())
    }
}

#[every("1s")]
async fn uses_url(State(url): State<Url>) {
    assert_eq!(url, Url("postgres://db".into()));
}

#[tokio::test(start_paused = true)]
async fn a_hand_written_from_ref_is_told_to_the_builder() {
    let without = Host::builder()
        .only_jobs(["uses_url"])
        .state(Config {
            url: "postgres://db".into(),
        })
        .build();
    assert!(without.is_err(), "not derived: the builder must be told");

    let host = Host::builder()
        .only_jobs(["uses_url"])
        .state(Config {
            url: "postgres://db".into(),
        })
        .substate::<Config, Url>()
        .build()
        .unwrap();
    let test = TestHost::start(host).await;
    test.advance(Duration::from_millis(10)).await;
    assert_eq!(test.status("uses_url").succeeded, 1);
    assert!(test.stop().await.is_clean());
}
