//! Every statement the coordinator sends, rendered once for its schema.
//!
//! Rules they all follow, so that instances never deadlock one another and
//! never trust their own clocks:
//! - a statement that updates several rows of `jobs` locks them first, in
//!   name order, in a `FOR UPDATE` CTE; names sort and join by bytes
//!   (`COLLATE "C"`): the database's locale would make every sort of ten
//!   thousand names cost a third of a second;
//! - every lease is `now()` of the database plus a length, and every check
//!   of one compares it with `now()`;
//! - a claim is one statement: the compare-and-set on the job's last
//!   claimed tick and the record of the run and its lease commit together;
//! - fencing numbers come from one sequence: they grow with every claim.

/// The statements, with the schema's name in place.
pub(crate) struct Sql {
    pub(crate) register: String,
    pub(crate) upsert_jobs: String,
    pub(crate) claim: String,
    pub(crate) complete: String,
    pub(crate) release: String,
    pub(crate) renew: String,
    pub(crate) rescue: String,
    pub(crate) triggers: String,
    pub(crate) paused: String,
    pub(crate) acquire: String,
    pub(crate) give_back: String,
    pub(crate) stop: String,
    pub(crate) prune: String,
    pub(crate) set_paused: String,
    pub(crate) trigger: String,
    pub(crate) instances: String,
    pub(crate) jobs: String,
    pub(crate) runs: String,
    pub(crate) jobs_named: String,
    pub(crate) failures: String,
    pub(crate) job_counts: String,
    pub(crate) audit: String,
    pub(crate) audit_log: String,
}

/// The cluster's jobs (those `filter` keeps), each with its run going on
/// or its latest finished one.
fn jobs_query(s: &str, filter: &str) -> String {
    format!(
        "SELECT j.name, j.kind, j.paused, j.last_tick, j.fence,
                coalesce(CASE WHEN j.lease_until >= now() THEN j.lease_holder END, r.instance),
                CASE WHEN j.lease_until >= now() THEN 'running' ELSE r.state END,
                CASE WHEN j.lease_until >= now() THEN j.lease_tick ELSE r.tick END,
                CASE WHEN j.lease_until >= now() THEN j.lease_started ELSE r.started_at END,
                CASE WHEN j.lease_until >= now() THEN NULL ELSE r.finished_at END,
                CASE WHEN j.lease_until >= now() THEN NULL ELSE r.error END,
                CASE WHEN j.lease_until >= now() THEN j.lease_fence ELSE r.fence END
         FROM {s}.jobs j
         LEFT JOIN LATERAL (
             SELECT instance, state, tick, fence, started_at, finished_at, error FROM {s}.runs
             WHERE runs.job = j.name ORDER BY id DESC LIMIT 1
         ) r ON true
         {filter}
         ORDER BY j.name"
    )
}

/// `now()` plus `$n` seconds.
fn lease(n: u8) -> String {
    format!("now() + ${n}::float8 * interval '1 second'")
}

impl Sql {
    pub(crate) fn new(schema: &str) -> Sql {
        let s = format!("\"{schema}\"");
        let lease6 = lease(6);
        let lease2 = lease(2);
        let lease3 = lease(3);
        let lease4 = lease(4);
        Sql {
            register: format!(
                "INSERT INTO {s}.instances (id, host_name, pid) VALUES ($1, $2, $3)"
            ),
            upsert_jobs: format!(
                "WITH given AS (SELECT * FROM unnest($1::text[], $2::text[]) AS g(name, kind)),
                 upserted AS (
                     INSERT INTO {s}.jobs (name, kind) SELECT name, kind FROM given ORDER BY name COLLATE \"C\"
                     ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind WHERE jobs.kind <> EXCLUDED.kind
                 )
                 SELECT j.name, j.last_tick, j.paused FROM {s}.jobs j WHERE j.name IN (SELECT name FROM given)"
            ),
            // $1 names, $2 ticks, $3 catch-up, $4 skip overlap, $5 rerun,
            // $6 lease seconds, $7 instance. Two instances that claim one
            // tick take turns at the job's row: the second finds the tick
            // claimed. Each instance fires a tick when the database's clock
            // reaches it, so all claims of a tick come before any claim of
            // the next.
            claim: format!(
                "WITH req AS (
                     SELECT r.name COLLATE \"C\" AS name, r.tick, r.catch_up, r.skip_overlap, r.rerun, r.n
                     FROM unnest($1::text[], $2::timestamptz[], $3::bool[], $4::bool[], $5::bool[])
                         WITH ORDINALITY AS r(name, tick, catch_up, skip_overlap, rerun, n)
                 ),
                 locked AS (
                     SELECT j.name, j.paused, j.last_tick,
                            (j.lease_until IS NOT NULL AND j.lease_until >= now()) AS held
                     FROM {s}.jobs j WHERE j.name IN (SELECT name FROM req)
                     ORDER BY j.name COLLATE \"C\" FOR UPDATE
                 ),
                 won AS (
                     SELECT r.*, nextval('{s}.fences') AS fence
                     FROM req r JOIN locked l ON l.name = r.name
                     WHERE NOT l.paused
                       AND (NOT r.skip_overlap OR NOT l.held)
                       AND CASE WHEN l.last_tick IS NULL THEN NOT r.catch_up ELSE l.last_tick < r.tick END
                 ),
                 updated AS (
                     UPDATE {s}.jobs j SET
                         last_tick = w.tick,
                         fence = w.fence,
                         lease_until = CASE WHEN w.skip_overlap THEN {lease6} ELSE j.lease_until END,
                         lease_fence = CASE WHEN w.skip_overlap THEN w.fence ELSE j.lease_fence END,
                         lease_holder = CASE WHEN w.skip_overlap THEN $7 ELSE j.lease_holder END,
                         lease_tick = CASE WHEN w.skip_overlap THEN w.tick ELSE j.lease_tick END,
                         lease_rerun = CASE WHEN w.skip_overlap THEN w.rerun ELSE j.lease_rerun END,
                         lease_started = CASE WHEN w.skip_overlap THEN now() ELSE j.lease_started END
                     FROM won w WHERE j.name = w.name
                 ),
                 live AS (
                     INSERT INTO {s}.running (job, tick, fence, instance, rerun, lease_until)
                     SELECT name, tick, fence, $7, rerun, {lease6} FROM won WHERE NOT skip_overlap
                     RETURNING id, job
                 )
                 SELECT r.n, w.fence, coalesce(lv.id, 0),
                     CASE WHEN w.n IS NOT NULL THEN 'granted'
                          WHEN l.name IS NULL THEN 'unknown'
                          WHEN l.paused THEN 'paused'
                          WHEN l.last_tick >= r.tick OR (l.last_tick IS NULL AND r.catch_up) THEN 'taken'
                          WHEN r.skip_overlap AND l.held THEN 'running'
                          ELSE 'taken' END
                 FROM req r
                 LEFT JOIN locked l ON l.name = r.name
                 LEFT JOIN won w ON w.n = r.n
                 LEFT JOIN live lv ON lv.job = w.name"
            ),
            // $1 names, $2 fences, $3 ids (0: the lease on the job's row),
            // $4 states, $5 errors, $6 instance. A run whose lease ran out
            // is not completed: its fence is not returned. A completed run
            // moves to the history.
            complete: format!(
                "WITH done AS (
                     SELECT d.name COLLATE \"C\" AS name, d.fence, d.id, d.state, d.error
                     FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[])
                         AS d(name, fence, id, state, error)
                 ),
                 jl AS (
                     SELECT j.name, j.lease_tick, j.lease_started FROM {s}.jobs j
                     WHERE j.name IN (SELECT name FROM done WHERE id = 0)
                     ORDER BY j.name COLLATE \"C\" FOR UPDATE
                 ),
                 j AS (
                     UPDATE {s}.jobs SET lease_until = NULL, lease_fence = NULL, lease_holder = NULL,
                         lease_tick = NULL, lease_rerun = NULL, lease_started = NULL
                     FROM done d, jl
                     WHERE jobs.name = jl.name AND d.name = jl.name AND d.id = 0
                       AND jobs.lease_fence = d.fence AND jobs.lease_holder = $6 AND jobs.lease_until >= now()
                     RETURNING d.fence, d.name, jl.lease_tick AS tick, jl.lease_started AS started_at, d.state, d.error
                 ),
                 r AS (
                     DELETE FROM {s}.running USING done d
                     WHERE running.id = d.id AND d.id <> 0 AND running.instance = $6 AND running.lease_until >= now()
                     RETURNING running.fence, running.job AS name, running.tick, running.started_at, d.state, d.error
                 ),
                 finished AS (SELECT * FROM j UNION ALL SELECT * FROM r),
                 history AS (
                     INSERT INTO {s}.runs (job, tick, fence, instance, state, started_at, error)
                     SELECT name, tick, fence, $6, state, started_at, error FROM finished
                 )
                 SELECT fence FROM finished"
            ),
            // $1 names, $2 fences, $3 ids, $4 instance: the leases end now,
            // so that the rescue treats the runs as lost (and reruns those
            // that rerun).
            release: format!(
                "WITH given AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS g(name, fence, id)),
                 jl AS (
                     SELECT j.name FROM {s}.jobs j WHERE j.name IN (SELECT name FROM given WHERE id = 0)
                     ORDER BY j.name COLLATE \"C\" FOR UPDATE
                 ),
                 j AS (
                     UPDATE {s}.jobs SET lease_until = now()
                     FROM given g, jl WHERE jobs.name = jl.name AND g.name = jl.name AND g.id = 0
                       AND jobs.lease_fence = g.fence AND jobs.lease_holder = $4
                     RETURNING jobs.name
                 ),
                 r AS (
                     UPDATE {s}.running SET lease_until = now()
                     WHERE id IN (SELECT id FROM given WHERE id <> 0) AND instance = $4
                     RETURNING id
                 )
                 SELECT (SELECT count(*) FROM j) + (SELECT count(*) FROM r)"
            ),
            // $1 instance, $2 lease seconds, $3 names and $4 fences of the
            // leases on jobs' rows, $5 ids of running rows, $6 singleton
            // names, $7 their fences. Returns the fences renewed.
            renew: format!(
                "WITH hb AS (UPDATE {s}.instances SET heartbeat_at = now() WHERE id = $1 RETURNING id),
                 jl AS (SELECT j.name FROM {s}.jobs j WHERE j.name = ANY($3) ORDER BY j.name COLLATE \"C\" FOR UPDATE),
                 j AS (
                     UPDATE {s}.jobs SET lease_until = {lease2}
                     FROM jl WHERE jobs.name = jl.name AND jobs.lease_holder = $1
                       AND jobs.lease_fence = ANY($4) AND jobs.lease_until >= now()
                     RETURNING jobs.lease_fence AS fence
                 ),
                 r AS (
                     UPDATE {s}.running SET lease_until = {lease2}
                     WHERE id = ANY($5) AND instance = $1 AND lease_until >= now()
                     RETURNING fence
                 ),
                 l AS (
                     UPDATE {s}.leases SET lease_until = {lease2}
                     FROM unnest($6::text[], $7::bigint[]) AS x(name, fence)
                     WHERE leases.name = x.name AND leases.fence = x.fence AND leases.holder = $1
                       AND leases.lease_until >= now()
                     RETURNING leases.name
                 )
                 SELECT 'run'::text, j.fence, NULL::text, NULL::timestamptz FROM j
                 UNION ALL SELECT 'run', r.fence, NULL, NULL FROM r
                 UNION ALL SELECT 'lease', NULL, l.name, NULL FROM l
                 UNION ALL SELECT 'instance', NULL, NULL, clock_timestamp() FROM hb"
            ),
            // $1 names of this instance's jobs that rerun, $2 instance, $3
            // lease seconds. A lease that ran out is a lost run: written to
            // the history as lost, and claimed again here if its job reruns
            // (lost runs of jobs this instance lacks are left to one that
            // has them, unless they do not rerun).
            rescue: format!(
                "WITH lost_jobs AS (
                     SELECT name, paused, lease_tick, lease_fence, lease_holder, lease_rerun, lease_started
                     FROM {s}.jobs
                     WHERE lease_holder IS NOT NULL AND lease_until < now()
                       AND (NOT lease_rerun OR name = ANY($1))
                     ORDER BY name COLLATE \"C\" LIMIT 1000 FOR UPDATE SKIP LOCKED
                 ),
                 again AS (
                     SELECT name, nextval('{s}.fences') AS fence FROM lost_jobs WHERE lease_rerun AND NOT paused
                 ),
                 retaken AS (
                     UPDATE {s}.jobs j SET
                         fence = coalesce(a.fence, j.fence),
                         lease_until = CASE WHEN a.fence IS NOT NULL THEN {lease3} END,
                         lease_fence = a.fence,
                         lease_holder = CASE WHEN a.fence IS NOT NULL THEN $2 END,
                         lease_tick = CASE WHEN a.fence IS NOT NULL THEN lj.lease_tick END,
                         lease_rerun = CASE WHEN a.fence IS NOT NULL THEN true END,
                         lease_started = CASE WHEN a.fence IS NOT NULL THEN now() END
                     FROM lost_jobs lj LEFT JOIN again a ON a.name = lj.name
                     WHERE j.name = lj.name
                     RETURNING j.name, a.fence, lj.lease_tick AS tick
                 ),
                 lost_live AS (
                     DELETE FROM {s}.running WHERE id IN (
                         SELECT id FROM {s}.running WHERE lease_until < now() AND (NOT rerun OR job = ANY($1))
                         ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED)
                     RETURNING job, tick, fence, instance, rerun, started_at
                 ),
                 again_live AS (
                     INSERT INTO {s}.running (job, tick, fence, instance, rerun, lease_until)
                     SELECT job, tick, nextval('{s}.fences'), $2, true, {lease3} FROM lost_live WHERE rerun
                     RETURNING id, job, tick, fence
                 ),
                 history AS (
                     INSERT INTO {s}.runs (job, tick, fence, instance, state, started_at, error)
                     SELECT name, lease_tick, lease_fence, lease_holder, 'lost', lease_started,
                            'its instance stopped renewing the lease' FROM lost_jobs
                     UNION ALL
                     SELECT job, tick, fence, instance, 'lost', started_at,
                            'its instance stopped renewing the lease' FROM lost_live
                 )
                 SELECT 'rerun'::text, 0::bigint, name, tick, fence FROM retaken WHERE fence IS NOT NULL
                 UNION ALL SELECT 'rerun', id, job, tick, fence FROM again_live
                 UNION ALL SELECT 'lost', NULL, name, lease_tick, NULL FROM lost_jobs
                 UNION ALL SELECT 'lost', NULL, job, tick, NULL FROM lost_live"
            ),
            // $1 names of this instance's cluster jobs, $2 instance, $3 the
            // names among them that do not overlap, $4 lease seconds.
            triggers: format!(
                "WITH t AS (
                     DELETE FROM {s}.triggers WHERE id IN (
                         SELECT id FROM {s}.triggers WHERE job = ANY($1)
                         ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED)
                     RETURNING job
                 ),
                 jl AS (
                     SELECT j.name, (j.lease_until IS NOT NULL AND j.lease_until >= now()) AS held,
                            j.name = ANY($3) AS skip_overlap
                     FROM {s}.jobs j WHERE j.name IN (SELECT job FROM t) ORDER BY j.name COLLATE \"C\" FOR UPDATE
                 ),
                 go AS (
                     SELECT name, skip_overlap, nextval('{s}.fences') AS fence FROM jl
                     WHERE NOT (skip_overlap AND held)
                 ),
                 j AS (
                     UPDATE {s}.jobs SET fence = go.fence, lease_until = {lease4}, lease_fence = go.fence,
                         lease_holder = $2, lease_tick = now(), lease_rerun = false, lease_started = now()
                     FROM go WHERE jobs.name = go.name AND go.skip_overlap
                 ),
                 live AS (
                     INSERT INTO {s}.running (job, tick, fence, instance, rerun, lease_until)
                     SELECT name, now(), fence, $2, false, {lease4} FROM go WHERE NOT skip_overlap
                     RETURNING id, job
                 )
                 SELECT 'run'::text, coalesce(live.id, 0), go.name, now(), go.fence
                 FROM go LEFT JOIN live ON live.job = go.name
                 UNION ALL SELECT 'dropped', NULL, name, NULL, NULL FROM jl WHERE skip_overlap AND held"
            ),
            paused: format!("SELECT name FROM {s}.jobs WHERE paused AND name = ANY($1)"),
            // $1 name, $2 instance, $3 lease seconds.
            acquire: format!(
                "INSERT INTO {s}.leases AS l (name, holder, fence, lease_until, acquired_at)
                 VALUES ($1, $2, 1, {lease3}, now())
                 ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, fence = l.fence + 1,
                     lease_until = EXCLUDED.lease_until, acquired_at = now()
                 WHERE l.lease_until IS NULL OR l.lease_until < now()
                 RETURNING l.fence"
            ),
            // $1 name, $2 instance, $3 fence.
            give_back: format!(
                "UPDATE {s}.leases SET holder = NULL, lease_until = NULL
                 WHERE name = $1 AND holder = $2 AND fence = $3 AND lease_until >= now()
                 RETURNING fence"
            ),
            // $1 instance: every lease this instance still holds ends now
            // (the rescue decides what runs again), and it is marked stopped.
            stop: format!(
                "WITH jl AS (
                     SELECT j.name FROM {s}.jobs j WHERE j.lease_holder = $1 AND j.lease_until > now()
                     ORDER BY j.name COLLATE \"C\" FOR UPDATE
                 ),
                 j AS (UPDATE {s}.jobs SET lease_until = now() FROM jl WHERE jobs.name = jl.name RETURNING jobs.name),
                 r AS (
                     UPDATE {s}.running SET lease_until = now()
                     WHERE instance = $1 AND lease_until > now() RETURNING id
                 ),
                 l AS (UPDATE {s}.leases SET holder = NULL, lease_until = NULL WHERE holder = $1 RETURNING name),
                 i AS (UPDATE {s}.instances SET stopped_at = now() WHERE id = $1 RETURNING id)
                 SELECT (SELECT count(*) FROM j) + (SELECT count(*) FROM r), (SELECT count(*) FROM l)"
            ),
            // $1 retention seconds.
            prune: format!(
                "DELETE FROM {s}.runs WHERE id IN (
                     SELECT id FROM {s}.runs
                     WHERE finished_at < now() - $1::float8 * interval '1 second'
                     LIMIT 10000)"
            ),
            set_paused: format!("UPDATE {s}.jobs SET paused = $2 WHERE name = $1 RETURNING name"),
            trigger: format!(
                "INSERT INTO {s}.triggers (job, requested_by)
                 SELECT name, $2 FROM {s}.jobs WHERE name = $1 RETURNING id"
            ),
            instances: format!(
                "SELECT id, host_name, pid, started_at, heartbeat_at, stopped_at FROM {s}.instances
                 ORDER BY started_at, id"
            ),
            jobs: jobs_query(&s, ""),
            runs: format!(
                "SELECT id, tick, fence, instance, state, started_at, finished_at, error FROM {s}.runs
                 WHERE job = $1 ORDER BY id DESC LIMIT $2"
            ),
            jobs_named: jobs_query(&s, "WHERE j.name = ANY($1)"),
            failures: format!(
                "SELECT job, tick, fence, instance, state, started_at, finished_at, error FROM {s}.runs
                 WHERE state IN ('failed', 'panicked', 'aborted', 'lost')
                 ORDER BY id DESC LIMIT $1"
            ),
            job_counts: format!(
                "SELECT count(*)::int8,
                        count(*) FILTER (WHERE paused)::int8,
                        count(*) FILTER (WHERE lease_until >= now())::int8
                 FROM {s}.jobs"
            ),
            audit: format!(
                "INSERT INTO {s}.audit (who, action, target, result, instance)
                 VALUES ($1, $2, $3, $4, $5)"
            ),
            audit_log: format!(
                "SELECT at, who, action, target, result, instance FROM {s}.audit
                 ORDER BY id DESC LIMIT $1"
            ),
        }
    }
}
