//! `build()`: every registration and setting checked, in named steps,
//! each adding what it finds wrong to one list of problems; the host is
//! assembled only when the list is empty.

use std::any::TypeId;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use super::builder::{Chosen, HostBuilder};
use super::config;
use super::problem::{BuildError, Problem};
use crate::base::clock::Clock;
use crate::base::kind::JobKind;
use crate::lifecycle::{Host, ServiceSlot};
use crate::model::extract::{Dependencies, Derivation};
use crate::model::job::{JobCluster, JobDef, JobStats, RunHistory};
use crate::model::registry::{registered, Candidate, Origin, Registration};
use crate::model::schedule::Schedule;
use crate::model::service::{ServiceRegistration, ServiceStatus};
use crate::model::shared::{HostShared, Stores};
use crate::seams::cluster::Placement;

impl HostBuilder {
    /// Checks the configuration and builds the host.
    ///
    /// # Errors
    ///
    /// Every problem found, at once: two jobs with one name, a job argument
    /// that needs state nobody registered, an invalid schedule or time zone
    /// of a job added by hand, a name given to `only_jobs` that no job has, a
    /// state type registered twice.
    pub fn build(mut self) -> Result<Host, BuildError> {
        let mut problems = Vec::new();
        let (mut candidates, registered_services) = self.select(&mut problems);
        self.apply_overrides(&mut candidates, &mut problems);
        let service_needs: Vec<Dependencies> = registered_services
            .iter()
            .map(|r| {
                let mut deps = Dependencies::default();
                (r.dependencies)(&mut deps);
                deps
            })
            .collect();
        let ambiguous = self.derive_states(&candidates, &service_needs, &mut problems);
        let (services, names) = self.services(
            registered_services,
            &service_needs,
            &ambiguous,
            &mut problems,
        );
        let process_seed = self.seed.unwrap_or_else(|| match self.clock {
            Clock::Manual(_) => 0,
            Clock::System => random_seed(),
        });
        let jobs = self.jobs(candidates, &names, &ambiguous, process_seed, &mut problems);
        let history = self.history(jobs.len(), &mut problems);
        self.check_states(&mut problems);
        self.check_queues(&mut problems);
        self.check_scopes(&mut problems);
        if !problems.is_empty() {
            return Err(BuildError { problems });
        }
        Ok(self.assemble(jobs, services, history, process_seed))
    }

    /// Derives every state a job, a factory or a service's constructor
    /// needs and the host lacks, from the states it has (sub-states).
    /// Returns the types that more than one state could give.
    fn derive_states(
        &mut self,
        candidates: &[Candidate],
        service_needs: &[Dependencies],
        problems: &mut Vec<Problem>,
    ) -> Vec<TypeId> {
        let mut derivations = std::mem::take(&mut self.derivations);
        derivations.extend(Derivation::registered());
        let needed = candidates
            .iter()
            .flat_map(|c| &c.dependencies.states)
            .chain(self.scopes.iter().flat_map(|s| &s.dependencies.states))
            .chain(service_needs.iter().flat_map(|d| &d.states));
        let mut ambiguous = Vec::new();
        for (type_id, type_name) in needed {
            if self.state.contains(*type_id) || ambiguous.contains(type_id) {
                continue;
            }
            if let Err(sources) = self.state.derive(*type_id, &derivations) {
                ambiguous.push(*type_id);
                problems.push(Problem::AmbiguousState { type_name, sources });
            }
        }
        ambiguous
    }

    /// The lifecycle services in start order: the builder's first (order
    /// 0, in the order added), then the declared ones (by order, module
    /// and name), each declared one constructed from the host's states.
    /// Returns them with the names they took.
    fn services(
        &mut self,
        registered: Vec<&'static ServiceRegistration>,
        needs: &[Dependencies],
        ambiguous: &[TypeId],
        problems: &mut Vec<Problem>,
    ) -> (Vec<ServiceSlot>, HashMap<Arc<str>, Origin>) {
        let explicit = self.services.drain(..).map(|service| {
            let name: Arc<str> = Arc::from(service.name().as_ref());
            (0, name, service, Origin::Builder)
        });
        let mut declared = Vec::with_capacity(registered.len());
        for (r, needs) in registered.into_iter().zip(needs) {
            let missing: Vec<&'static str> = needs
                .states
                .iter()
                .filter(|(type_id, _)| {
                    !self.state.contains(*type_id) && !ambiguous.contains(type_id)
                })
                .map(|(_, type_name)| *type_name)
                .collect();
            if !missing.is_empty() {
                for type_name in missing {
                    problems.push(Problem::ServiceMissingState {
                        service: r.name.to_owned(),
                        type_name,
                    });
                }
                continue;
            }
            match (r.make)(&self.state) {
                Ok(service) => {
                    declared.push((r.order, Arc::from(r.name), service.0, Origin::Service(r)));
                }
                Err(message) => problems.push(Problem::ServiceConstructor {
                    service: r.name.to_owned(),
                    message,
                }),
            }
        }
        let mut all: Vec<_> = explicit.chain(declared).collect();
        // A stable sort by order keeps the tie-break above.
        all.sort_by_key(|(order, ..)| *order);
        let mut names: HashMap<Arc<str>, Origin> = HashMap::new();
        let mut services = Vec::new();
        for (_, name, service, origin) in all {
            if let Some(first) = names.get(&name) {
                problems.push(Problem::DuplicateName {
                    name: name.to_string(),
                    first: first.to_string(),
                    second: origin.to_string(),
                });
                continue;
            }
            names.insert(name.clone(), origin);
            services.push(ServiceSlot {
                index: services.len(),
                status: ServiceStatus::new(
                    name.clone(),
                    match origin {
                        Origin::Builder => "HostBuilder::service".to_owned(),
                        declared => declared.to_string(),
                    },
                ),
                name,
                service,
                started: false,
            });
        }
        (services, names)
    }

    /// Every candidate that is valid becomes a job; the others add their
    /// problems.
    fn jobs(
        &self,
        candidates: Vec<Candidate>,
        services: &HashMap<Arc<str>, Origin>,
        ambiguous: &[TypeId],
        process_seed: u64,
        problems: &mut Vec<Problem>,
    ) -> Vec<Arc<JobDef>> {
        let mut duplicates = duplicate_names(&candidates, services)
            .into_iter()
            .peekable();
        let mut jobs = Vec::with_capacity(candidates.len());
        for (i, candidate) in candidates.into_iter().enumerate() {
            if let Some((_, first)) = duplicates.next_if(|(at, _)| *at == i) {
                problems.push(Problem::DuplicateName {
                    name: candidate.name.to_string(),
                    first: first.to_string(),
                    second: candidate.origin.to_string(),
                });
                continue;
            }
            let index = u32::try_from(jobs.len()).expect("fewer than 4 billion jobs");
            if let Some(job) = self.job_def(candidate, index, ambiguous, process_seed, problems) {
                jobs.push(job);
            }
        }
        jobs
    }

    /// One candidate as a job, if its arguments, cluster options and
    /// schedule are valid on this host.
    fn job_def(
        &self,
        candidate: Candidate,
        index: u32,
        ambiguous: &[TypeId],
        process_seed: u64,
        problems: &mut Vec<Problem>,
    ) -> Option<Arc<JobDef>> {
        let before = problems.len();
        for (type_id, type_name) in &candidate.dependencies.states {
            if !self.state.contains(*type_id) && !ambiguous.contains(type_id) {
                problems.push(Problem::MissingState {
                    job: candidate.name.to_string(),
                    type_name,
                });
            }
        }
        for name in &candidate.dependencies.queues {
            if !self.queues.iter().any(|q| q.name() == *name) {
                problems.push(Problem::MissingQueue {
                    job: candidate.name.to_string(),
                    queue: name,
                });
            }
        }
        let mut scoped = Vec::new();
        for (type_id, type_name) in &candidate.dependencies.scoped {
            match self.scopes.iter().position(|def| def.type_id == *type_id) {
                Some(index) => scoped.push(index),
                None => problems.push(Problem::MissingScoped {
                    job: candidate.name.to_string(),
                    type_name,
                }),
            }
        }
        let kind = candidate.schedule.kind();
        let scope = candidate.cluster.scope;
        if let Some(message) = self.cluster_problem(&candidate, kind) {
            problems.push(Problem::InvalidCluster {
                job: candidate.name.to_string(),
                message,
            });
        }
        let claims = self.coordinator.is_some()
            && matches!(kind, JobKind::Every | JobKind::Cron)
            && scope == Placement::Cluster;
        // The one place that decides whose jitter a job gets: a claimed
        // tick's instant must be the same on every instance, so it depends
        // on the job and the tick only; any other job's on this process's
        // seed too.
        let seed = if claims { CLUSTER_SEED } else { process_seed };
        let schedule = match Schedule::from_spec(
            candidate.schedule,
            candidate.on_failure,
            &candidate.name,
            seed,
        ) {
            Ok(schedule) => schedule,
            Err(message) => {
                problems.push(Problem::InvalidSchedule {
                    job: candidate.name.to_string(),
                    message,
                });
                return None;
            }
        };
        // A job with any problem is not made (the host is not built), but
        // its other problems are all reported.
        if problems.len() > before {
            return None;
        }
        // Made in place: a host may take 100,000 jobs.
        Some(Arc::new(JobDef {
            name: candidate.name,
            index,
            enabled: candidate.enabled,
            kind,
            registration: match candidate.origin {
                Origin::Job(r) => Some(r),
                Origin::Service(_) | Origin::Builder => None,
            },
            schedule,
            overlap: candidate.overlap,
            invoke: candidate.invoke,
            scoped: scoped.into_boxed_slice(),
            cluster: self
                .coordinator
                .is_some()
                .then(|| Box::new(JobCluster::new(candidate.cluster, claims))),
            stats: JobStats::default(),
        }))
    }

    /// What is wrong with a job's cluster options and the arguments only a
    /// cluster or a durable queue gives, if anything.
    fn cluster_problem(&self, candidate: &Candidate, kind: JobKind) -> Option<&'static str> {
        let deps = &candidate.dependencies;
        match (kind, candidate.cluster.scope) {
            (JobKind::Service, Placement::Cluster) => Some(
                "a service cannot have `scope = \"cluster\"`; use `\"singleton\"` (one instance at a time) or `\"instance\"` (every instance)",
            ),
            (JobKind::Every | JobKind::Cron, Placement::Singleton) => Some(
                "a scheduled job cannot have `scope = \"singleton\"`; use `\"cluster\"` (each tick once across the cluster) or `\"instance\"` (every instance)",
            ),
            (JobKind::Queued, Placement::Cluster | Placement::Singleton) => Some(
                "a queued handler runs each item once through its durable queue, whatever the scope; remove `scope`",
            ),
            (JobKind::Every | JobKind::Cron | JobKind::Service, _) if deps.item => {
                Some("it takes the work item (`WorkItem` or `Payload<T>`), which only queued handlers (`#[queued]`) are given; make it a queued handler, or remove the argument")
            }
            (JobKind::Queued, _) => None,
            _ if deps.fence && self.coordinator.is_none() => Some(
                "it takes `Fence`, which only runs claimed through a cluster have; configure one with `HostBuilder::cluster`",
            ),
            (_, Placement::Instance) if deps.fence => Some(
                "it takes `Fence` but has `scope = \"instance\"`, whose runs are not claimed through the cluster; remove one of the two",
            ),
            _ => None,
        }
    }

    /// The run history: each job's share of the budget, the same for all
    /// and at least 1.
    fn history(&self, jobs: usize, problems: &mut Vec<Problem>) -> RunHistory {
        let settings = &self.settings;
        if settings.run_history == 0 {
            problems.push(Problem::InvalidHostConfig {
                key: "run_history",
                message: "it is zero, but every job keeps at least its last run; give 1 to keep only that".to_owned(),
            });
        }
        let keep = match jobs {
            0 => 1,
            n => (settings.run_history_budget / n).clamp(1, settings.run_history.max(1)),
        };
        RunHistory::new(jobs, keep)
    }

    fn check_states(&self, problems: &mut Vec<Problem>) {
        for &type_name in &self.duplicate_state {
            problems.push(Problem::DuplicateState { type_name });
        }
    }

    fn check_queues(&self, problems: &mut Vec<Problem>) {
        for (i, queue) in self.queues.iter().enumerate() {
            let options = queue.options();
            let message = if queue.is_attached() {
                Some("it already belongs to another host; give each host its own queue")
            } else if self.queues[..i].iter().any(|q| q.name() == queue.name()) {
                Some("two queues have this name; give each its own with `QueueOptions::named`")
            } else if options.capacity == 0 {
                Some("the capacity is zero; give it room for at least one item")
            } else if options.workers == 0 {
                Some("it has no workers; give it at least one")
            } else {
                None
            };
            if let Some(message) = message {
                problems.push(Problem::InvalidQueue {
                    queue: queue.name().to_owned(),
                    message,
                });
            }
        }
    }

    fn check_scopes(&self, problems: &mut Vec<Problem>) {
        for (i, def) in self.scopes.iter().enumerate() {
            if self.scopes[..i].iter().any(|d| d.type_id == def.type_id) {
                problems.push(Problem::DuplicateScoped {
                    type_name: def.type_name,
                });
            }
            for (type_id, state) in &def.dependencies.states {
                if !self.state.contains(*type_id) {
                    problems.push(Problem::FactoryMissingState {
                        type_name: def.type_name,
                        state,
                    });
                }
            }
            for (_, inner) in &def.dependencies.scoped {
                problems.push(Problem::ScopedInFactory {
                    type_name: def.type_name,
                    takes: inner,
                });
            }
        }
    }

    /// The host, from parts that passed every check.
    fn assemble(
        self,
        jobs: Vec<Arc<JobDef>>,
        mut services: Vec<ServiceSlot>,
        history: RunHistory,
        process_seed: u64,
    ) -> Host {
        for queue in &self.queues {
            queue.attach();
        }
        let shared = Arc::new(HostShared::new(
            self.state,
            self.clock,
            jobs,
            self.scopes,
            self.queues,
            Stores {
                coordinator: self.coordinator,
                sources: self.sources,
            },
            process_seed,
            history,
        ));
        let _ = shared
            .lifecycle
            .set(services.iter().map(|slot| slot.status.clone()).collect());
        // A `WebServer` gives its routes the host's handle; no other
        // service takes one, so this is a check of the concrete type
        // rather than a method every service would carry.
        #[cfg(feature = "axum")]
        for slot in &mut services {
            if let Some(web) = slot
                .service
                .as_any_mut()
                .downcast_mut::<crate::web::WebServer>()
            {
                web.attach(crate::HostHandle::new(shared.clone()));
            }
        }
        #[cfg(not(feature = "axum"))]
        let _ = &mut services;
        Host {
            shared,
            settings: self.settings,
            services,
        }
    }

    /// Applies configuration to the jobs it names.
    fn apply_overrides(&mut self, candidates: &mut [Candidate], problems: &mut Vec<Problem>) {
        let overrides = std::mem::take(&mut self.overrides);
        for (key, value) in [
            ("shutdown_timeout", overrides.shutdown_timeout),
            ("startup_timeout", overrides.startup_timeout),
        ] {
            let Some(text) = value else { continue };
            match config::duration(key, &text) {
                Ok(limit) if key == "shutdown_timeout" => self.settings.shutdown_timeout = limit,
                Ok(limit) => self.settings.startup_timeout = Some(limit),
                Err((key, message)) => problems.push(Problem::InvalidHostConfig { key, message }),
            }
        }
        for (name, job_config) in overrides.jobs {
            match candidates.iter_mut().find(|c| *c.name == *name) {
                Some(candidate) => {
                    for (key, message) in config::apply(candidate, job_config) {
                        problems.push(Problem::InvalidConfig {
                            job: name.clone(),
                            key,
                            message,
                        });
                    }
                }
                None if registered().iter().any(|r| r.name == name) => {}
                None => problems.push(Problem::InvalidConfig {
                    job: name,
                    key: "jobs",
                    message: "no job has this name".to_owned(),
                }),
            }
        }
    }

    /// The registered jobs the selection takes followed by the explicit ones,
    /// and the registered service types it takes, in start order.
    fn select(
        &mut self,
        problems: &mut Vec<Problem>,
    ) -> (Vec<Candidate>, Vec<&'static ServiceRegistration>) {
        let jobs = registered();
        let mut services: Vec<&'static ServiceRegistration> =
            inventory::iter::<ServiceRegistration>.into_iter().collect();
        self.settings.nothing_registered =
            self.selection.is_none() && jobs.is_empty() && services.is_empty();
        services.sort_by_key(|r| (r.order, r.module, r.name, r.file, r.line));
        if let Some(Chosen { names, modules }) = &self.selection {
            for name in names {
                let known =
                    jobs.iter().any(|r| r.name == name) || services.iter().any(|r| r.name == name);
                if !known {
                    problems.push(Problem::UnknownJob {
                        name: name.clone(),
                        known: jobs.iter().map(|r| r.name).collect(),
                    });
                }
            }
            let chosen = |name: &str, module: &str| {
                names.iter().any(|n| n == name) || modules.iter().any(|m| in_module(module, m))
            };
            let jobs = jobs
                .into_iter()
                .filter(|r: &&Registration| chosen(r.name, r.module))
                .collect::<Vec<_>>();
            services.retain(|r| chosen(r.name, r.module));
            return (self.candidates(jobs), services);
        }
        (self.candidates(jobs), services)
    }

    fn candidates(&mut self, registered: Vec<&'static Registration>) -> Vec<Candidate> {
        registered
            .into_iter()
            .map(Candidate::from_registration)
            .chain(self.jobs.drain(..).map(Candidate::from_job))
            .collect()
    }
}

/// The candidates whose name a service or an earlier candidate took, by
/// index, with the first holder. Names are compared by reference, so that
/// each job's name is then moved into it, never copied: a host may take
/// 100,000 jobs.
fn duplicate_names(
    candidates: &[Candidate],
    services: &HashMap<Arc<str>, Origin>,
) -> Vec<(usize, Origin)> {
    let mut duplicates = Vec::new();
    let mut first_of: HashMap<&str, usize> = HashMap::with_capacity(candidates.len());
    for (i, candidate) in candidates.iter().enumerate() {
        let first = match services.get(&*candidate.name) {
            Some(service) => Some(*service),
            None => match first_of.entry(&candidate.name) {
                Entry::Occupied(first) => Some(candidates[*first.get()].origin),
                Entry::Vacant(slot) => {
                    slot.insert(i);
                    None
                }
            },
        };
        if let Some(first) = first {
            duplicates.push((i, first));
        }
    }
    duplicates
}

/// The seed of claimed ticks' jitter: the same on every instance.
const CLUSTER_SEED: u64 = 0;

/// A seed of this process's own. std's `RandomState` is seeded from the
/// operating system's randomness once per process (and varies per
/// instance), which is all a jitter needs: no random-number crate for one
/// number at build time. The pid and the time are mixed in as well.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    hasher.finish()
}

fn in_module(module: &str, prefix: &str) -> bool {
    module == prefix
        || module
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with("::"))
}
