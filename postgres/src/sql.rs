//! Every statement the coordinator sends, rendered once for its schema.
//!
//! Rules they all follow, so that instances never deadlock one another and
//! never trust their own clocks:
//! - a statement that updates several rows of `jobs` locks them first, in
//!   name order, in a `FOR UPDATE` CTE;
//! - every lease is `now()` of the database plus a length, and every check
//!   of one compares it with `now()`;
//! - a claim is one statement: the check (the job's row, locked; the
//!   unique index on the run's `(job, tick, attempt)`) and the record of
//!   the run and its lease commit together;
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
                     INSERT INTO {s}.jobs (name, kind) SELECT name, kind FROM given ORDER BY name
                     ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind WHERE jobs.kind <> EXCLUDED.kind
                 )
                 SELECT j.name, j.last_tick, j.paused FROM {s}.jobs j WHERE j.name IN (SELECT name FROM given)"
            ),
            // $1 names, $2 ticks, $3 catch-up, $4 skip overlap, $5 rerun,
            // $6 lease seconds, $7 instance. The unique index on (job,
            // tick, attempt) decides: of two instances that claim one tick,
            // the second waits on the job's row and then finds the run's
            // record there. Ticks may be claimed out of order (an instance
            // whose clock runs ahead claims later ones first): each is
            // claimed once, whatever the order.
            claim: format!(
                "WITH req AS (
                     SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::bool[], $4::bool[], $5::bool[])
                         WITH ORDINALITY AS r(name, tick, catch_up, skip_overlap, rerun, n)
                 ),
                 locked AS (
                     SELECT j.name, j.paused, j.last_tick,
                            (j.lease_until IS NOT NULL AND j.lease_until >= now()) AS held
                     FROM {s}.jobs j WHERE j.name IN (SELECT name FROM req)
                     ORDER BY j.name FOR UPDATE
                 ),
                 eligible AS (
                     SELECT r.* FROM req r JOIN locked l ON l.name = r.name
                     WHERE NOT l.paused
                       AND (NOT r.skip_overlap OR NOT l.held)
                       AND (NOT r.catch_up OR (l.last_tick IS NOT NULL AND l.last_tick < r.tick))
                 ),
                 inserted AS (
                     INSERT INTO {s}.runs (job, tick, fence, instance, state, rerun, lease_until)
                     SELECT name, tick, nextval('{s}.fences'), $7, 'running', rerun, {lease6}
                     FROM eligible ORDER BY name
                     ON CONFLICT (job, tick, attempt) DO NOTHING
                     RETURNING id, job, tick, fence
                 ),
                 updated AS (
                     UPDATE {s}.jobs j SET
                         last_tick = greatest(j.last_tick, i.tick),
                         fence = i.fence,
                         lease_until = CASE WHEN e.skip_overlap THEN {lease6} ELSE j.lease_until END,
                         lease_fence = CASE WHEN e.skip_overlap THEN i.fence ELSE j.lease_fence END
                     FROM inserted i JOIN eligible e ON e.name = i.job
                     WHERE j.name = i.job
                 )
                 SELECT r.n, i.id, i.fence,
                     CASE WHEN i.id IS NOT NULL THEN 'granted'
                          WHEN l.name IS NULL THEN 'unknown'
                          WHEN l.paused THEN 'paused'
                          WHEN EXISTS (SELECT 1 FROM {s}.runs x WHERE x.job = r.name AND x.tick = r.tick) THEN 'taken'
                          WHEN r.catch_up THEN 'taken'
                          WHEN r.skip_overlap AND l.held THEN 'running'
                          ELSE 'taken' END
                 FROM req r
                 LEFT JOIN locked l ON l.name = r.name
                 LEFT JOIN inserted i ON i.job = r.name"
            ),
            // $1 run ids, $2 states, $3 errors, $4 instance. A run whose
            // lease ran out is not completed: its id is not returned.
            complete: format!(
                "WITH done AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) AS d(id, state, error)),
                 r AS (
                     UPDATE {s}.runs SET state = d.state, error = d.error, finished_at = now(), lease_until = NULL
                     FROM done d
                     WHERE runs.id = d.id AND runs.instance = $4 AND runs.state = 'running'
                       AND runs.lease_until >= now()
                     RETURNING runs.id, runs.job, runs.fence
                 ),
                 jl AS (SELECT j.name FROM {s}.jobs j WHERE j.name IN (SELECT job FROM r) ORDER BY j.name FOR UPDATE),
                 j AS (
                     UPDATE {s}.jobs SET lease_until = NULL, lease_fence = NULL
                     FROM r, jl WHERE jobs.name = jl.name AND r.job = jl.name AND jobs.lease_fence = r.fence
                 )
                 SELECT id FROM r"
            ),
            // $1 run ids, $2 instance: the leases end now, so that the rescue
            // treats the runs as lost (and reruns those that rerun).
            release: format!(
                "WITH r AS (
                     UPDATE {s}.runs SET lease_until = now()
                     WHERE id = ANY($1) AND instance = $2 AND state = 'running'
                     RETURNING job, fence
                 ),
                 jl AS (SELECT j.name FROM {s}.jobs j WHERE j.name IN (SELECT job FROM r) ORDER BY j.name FOR UPDATE),
                 j AS (
                     UPDATE {s}.jobs SET lease_until = now()
                     FROM r, jl WHERE jobs.name = jl.name AND r.job = jl.name AND jobs.lease_fence = r.fence
                 )
                 SELECT count(*) FROM r"
            ),
            // $1 instance, $2 lease seconds, $3 run ids, $4 singleton names,
            // $5 their fences.
            renew: format!(
                "WITH hb AS (UPDATE {s}.instances SET heartbeat_at = now() WHERE id = $1 RETURNING id),
                 r AS (
                     UPDATE {s}.runs SET lease_until = {lease2}
                     WHERE id = ANY($3) AND instance = $1 AND state = 'running' AND lease_until >= now()
                     RETURNING id, job, fence
                 ),
                 jl AS (SELECT j.name FROM {s}.jobs j WHERE j.name IN (SELECT job FROM r) ORDER BY j.name FOR UPDATE),
                 j AS (
                     UPDATE {s}.jobs SET lease_until = {lease2}
                     FROM r, jl WHERE jobs.name = jl.name AND r.job = jl.name AND jobs.lease_fence = r.fence
                 ),
                 l AS (
                     UPDATE {s}.leases SET lease_until = {lease2}
                     FROM unnest($4::text[], $5::bigint[]) AS x(name, fence)
                     WHERE leases.name = x.name AND leases.fence = x.fence AND leases.holder = $1
                       AND leases.lease_until >= now()
                     RETURNING leases.name
                 )
                 SELECT 'run'::text, r.id, NULL::text, NULL::timestamptz FROM r
                 UNION ALL SELECT 'lease', NULL, l.name, NULL FROM l
                 UNION ALL SELECT 'instance', NULL, NULL, clock_timestamp() FROM hb"
            ),
            // $1 names of this instance's jobs that rerun, $2 instance, $3
            // lease seconds. Lost runs of other jobs are left for an
            // instance that has them, unless they do not rerun.
            rescue: format!(
                "WITH lost AS (
                     SELECT id FROM {s}.runs
                     WHERE state = 'running' AND lease_until < now() AND (NOT rerun OR job = ANY($1))
                     ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED
                 ),
                 marked AS (
                     UPDATE {s}.runs SET state = 'lost', finished_at = now(),
                         error = coalesce(error, 'its instance stopped renewing the lease')
                     FROM lost WHERE runs.id = lost.id
                     RETURNING runs.job, runs.tick, runs.attempt, runs.rerun
                 ),
                 jl AS (
                     SELECT j.name, j.paused FROM {s}.jobs j
                     WHERE j.name IN (SELECT job FROM marked WHERE rerun) ORDER BY j.name FOR UPDATE
                 ),
                 inserted AS (
                     INSERT INTO {s}.runs (job, tick, attempt, fence, instance, state, rerun, lease_until)
                     SELECT m.job, m.tick, m.attempt + 1, nextval('{s}.fences'), $2, 'running', true, {lease3}
                     FROM marked m JOIN jl ON jl.name = m.job
                     WHERE m.rerun AND NOT jl.paused
                     ORDER BY m.job, m.tick
                     ON CONFLICT (job, tick, attempt) DO NOTHING
                     RETURNING id, job, tick, fence
                 ),
                 updated AS (
                     UPDATE {s}.jobs j SET fence = i.fence, lease_until = {lease3}, lease_fence = i.fence
                     FROM (SELECT DISTINCT ON (job) job, fence FROM inserted ORDER BY job, fence DESC) i
                     WHERE j.name = i.job
                 )
                 SELECT 'rerun'::text, id, job, tick, fence FROM inserted
                 UNION ALL SELECT 'lost', NULL, job, tick, NULL FROM marked"
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
                 one AS (SELECT DISTINCT job FROM t),
                 jl AS (
                     SELECT j.name, (j.lease_until IS NOT NULL AND j.lease_until >= now()) AS held
                     FROM {s}.jobs j WHERE j.name IN (SELECT job FROM one) ORDER BY j.name FOR UPDATE
                 ),
                 inserted AS (
                     INSERT INTO {s}.runs (job, tick, fence, instance, state, rerun, lease_until)
                     SELECT jl.name, now(), nextval('{s}.fences'), $2, 'running', false, {lease4}
                     FROM jl WHERE NOT (jl.name = ANY($3) AND jl.held)
                     ORDER BY jl.name
                     ON CONFLICT (job, tick, attempt) DO NOTHING
                     RETURNING id, job, tick, fence
                 ),
                 updated AS (
                     UPDATE {s}.jobs j SET fence = i.fence,
                         lease_until = CASE WHEN j.name = ANY($3) THEN {lease4} ELSE j.lease_until END,
                         lease_fence = CASE WHEN j.name = ANY($3) THEN i.fence ELSE j.lease_fence END
                     FROM inserted i WHERE j.name = i.job
                 )
                 SELECT 'run'::text, id, job, tick, fence FROM inserted
                 UNION ALL SELECT 'dropped', NULL, jl.name, NULL, NULL FROM jl WHERE jl.name = ANY($3) AND jl.held"
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
            // $1 instance.
            stop: format!(
                "WITH r AS (
                     UPDATE {s}.runs SET lease_until = now()
                     WHERE instance = $1 AND state = 'running' AND lease_until > now()
                     RETURNING job, fence
                 ),
                 jl AS (SELECT j.name FROM {s}.jobs j WHERE j.name IN (SELECT job FROM r) ORDER BY j.name FOR UPDATE),
                 j AS (
                     UPDATE {s}.jobs SET lease_until = now()
                     FROM r, jl WHERE jobs.name = jl.name AND r.job = jl.name AND jobs.lease_fence = r.fence
                 ),
                 l AS (UPDATE {s}.leases SET holder = NULL, lease_until = NULL WHERE holder = $1 RETURNING name),
                 i AS (UPDATE {s}.instances SET stopped_at = now() WHERE id = $1 RETURNING id)
                 SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM l)"
            ),
            // $1 retention seconds.
            prune: format!(
                "DELETE FROM {s}.runs WHERE id IN (
                     SELECT id FROM {s}.runs
                     WHERE state <> 'running' AND finished_at < now() - $1::float8 * interval '1 second'
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
            jobs: format!(
                "SELECT j.name, j.kind, j.paused, j.last_tick, j.fence,
                        r.instance, r.state, r.tick, r.started_at, r.finished_at, r.error
                 FROM {s}.jobs j
                 LEFT JOIN LATERAL (
                     SELECT instance, state, tick, started_at, finished_at, error FROM {s}.runs
                     WHERE runs.job = j.name ORDER BY id DESC LIMIT 1
                 ) r ON true
                 ORDER BY j.name"
            ),
            runs: format!(
                "SELECT id, tick, fence, instance, state, started_at, finished_at, error FROM {s}.runs
                 WHERE job = $1 ORDER BY id DESC LIMIT $2"
            ),
        }
    }
}
