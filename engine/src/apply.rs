//! Applying a plan: its changes become operations on a DAG, walked by
//! [`crate::dag::walk`] with each operation calling a provider and then
//! persisting its result through the state writer before its dependents may
//! start. `--parallelism` bounds the operations in the cloud at once: an
//! operation's slot goes to the next one as soon as the cloud has answered,
//! while its result is being recorded.
//!
//! Operations and their order:
//! - create / update of X waits for the create / update of everything X
//!   depends on in the spec;
//! - delete of X waits for the delete of everything that depended on X when
//!   it was applied (reverse order), and for the update of anything that
//!   depended on X and is being changed to stop doing so (pure deletes only:
//!   in a replace the dependent's update waits for the new X instead);
//! - a replace is a delete of X followed by a create of X;
//! - a replace in a rolling group is create-before-destroy: the create of
//!   the new X (which records the old object as deposed), then the delete
//!   of the old X, which waits for the update of each dependent that moves
//!   to the new X (one whose configuration refers to X: a dependent only
//!   ordered after X by `depends_on` does not hold the old X) and the delete
//!   of each that goes. The group's replaces run
//!   one at a time in address order: each create waits for the previous
//!   member's old object to be deleted (an order added only where it closes
//!   no cycle, so a dependent that needs every new member at once still
//!   gets them). A member that depends on another member of its group (join
//!   order: `control_plane[1]` after `control_plane[0]`) does not hold back
//!   the delete of that one's old object: the group's order already runs it
//!   after;
//! - a deposed object left by an interrupted run is deleted before anything
//!   else is done to its address.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skyplan_state::{Mutation, PendingCreate, ResourceState, State, Writer};

use crate::address::Address;
use crate::dag::{self, Outcome};
use crate::plan::{Action, Change, Plan};
use crate::provider::{OpContext, Progress, Providers};
use crate::redact::Redactor;
use crate::value::{self, contains_unknown, Attrs, Reference};

/// The kind of one operation: what a progress line says is happening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Create,
    Update,
    Delete,
}

impl OpKind {
    pub fn verb(self) -> &'static str {
        match self {
            OpKind::Create => "Creating",
            OpKind::Update => "Modifying",
            OpKind::Delete => "Destroying",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            OpKind::Create => "Creation",
            OpKind::Update => "Modification",
            OpKind::Delete => "Destruction",
        }
    }

    pub fn done(self) -> &'static str {
        match self {
            OpKind::Create => "Creation complete",
            OpKind::Update => "Modifications complete",
            OpKind::Delete => "Destruction complete",
        }
    }
}

/// What happens during apply, in order, for progress display and tests.
#[derive(Debug, Clone)]
pub enum Event {
    /// `waits_for`: the operations this one waited for (the schedule's
    /// edges), by address and kind: what a run's timeline follows to find
    /// its critical path.
    Started {
        address: Address,
        op: OpKind,
        waits_for: Vec<(Address, OpKind)>,
    },
    Progress {
        address: Address,
        op: OpKind,
        message: String,
        elapsed: Duration,
    },
    Finished {
        address: Address,
        op: OpKind,
        id: Option<String>,
        elapsed: Duration,
    },
    Failed {
        address: Address,
        op: OpKind,
        error: String,
    },
    Skipped {
        address: Address,
        op: OpKind,
    },
}

pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

pub struct ApplyOptions {
    pub parallelism: usize,
    /// Set to stop starting new operations (Ctrl-C); running ones finish.
    pub stop: Arc<AtomicBool>,
    pub events: EventSink,
    /// Called after the cloud has done an operation and before its result is
    /// recorded: the moment a crash loses the most. Crash tests hook it.
    pub before_recording: Option<RecordingHook>,
    /// The spec's sensitive values: sent to the provider as they are, but
    /// masked in what is recorded (intents, results) and in error messages.
    pub redactor: Redactor,
}

pub type RecordingHook = Arc<dyn Fn(&Address, OpKind) + Send + Sync>;

impl ApplyOptions {
    pub fn new(parallelism: usize) -> Self {
        ApplyOptions {
            parallelism,
            stop: Arc::new(AtomicBool::new(false)),
            events: Arc::new(|_| {}),
            before_recording: None,
            redactor: Redactor::default(),
        }
    }
}

/// How an apply went, operation by operation.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub succeeded: Vec<(Address, OpKind)>,
    pub failed: Vec<(Address, OpKind, String)>,
    pub skipped: Vec<(Address, OpKind)>,
    pub not_started: Vec<(Address, OpKind)>,
}

impl ApplyReport {
    pub fn is_success(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty() && self.not_started.is_empty()
    }
}

/// One operation of an apply: the index of its change in the plan, and what
/// it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub change: usize,
    pub kind: OpKind,
    /// A delete of the address's deposed object (the old one of a
    /// create-before-destroy replacement), not of its current one.
    pub deposed: bool,
}

/// How apply will run a plan: its operations, what each waits for (indexes
/// into `ops`), and each one's priority, the longest estimated path from it
/// to the end (ready operations start highest first: critical path first).
#[derive(Debug, Clone)]
pub struct Schedule {
    pub ops: Vec<Op>,
    pub deps: Vec<Vec<usize>>,
    pub priority: Vec<u64>,
}

/// The schedule [`apply`] walks for `plan`: public so that benchmarks can
/// run the same walk in virtual time and judge the scheduler alone.
pub fn schedule(plan: &Plan, providers: &Providers) -> Schedule {
    let (ops, deps) = operations(&plan.changes);
    let cost: Vec<u64> = ops
        .iter()
        .map(|op| {
            let c = &plan.changes[op.change];
            let attrs = c.config.as_ref().or(c.before.as_ref());
            match (providers.for_kind(&c.kind), attrs) {
                (Some(p), Some(a)) => p.estimated_duration(&c.kind, a).as_millis() as u64 + 1,
                _ => 1,
            }
        })
        .collect();
    let priority = dag::remaining_path_costs(&deps, &cost);
    Schedule { ops, deps, priority }
}

/// The operations of `plan` that could never start because they wait on
/// themselves (through each other), each as "create ADDRESS" / "delete
/// ADDRESS"; empty when some order applies the whole plan.
pub fn blocked(plan: &Plan) -> Vec<String> {
    let (ops, deps) = operations(&plan.changes);
    dag::blocked(&deps)
        .into_iter()
        .map(|i| {
            let op = &ops[i];
            let verb = match op.kind {
                OpKind::Create => "create",
                OpKind::Update => "update",
                OpKind::Delete if op.deposed => "delete (deposed)",
                OpKind::Delete => "delete",
            };
            format!("{verb} {}", plan.changes[op.change].address)
        })
        .collect()
}

/// A plan must be one some order applies: refused here, before any change,
/// when its operations wait on each other (the executor would stop with
/// them left and nothing running).
pub fn check_order(plan: &Plan) -> Result<(), crate::Diagnostics> {
    let blocked = blocked(plan);
    if blocked.is_empty() {
        return Ok(());
    }
    Err(crate::Diagnostic::new(
        crate::Location::None,
        format!(
            "no order can apply this plan: these operations wait on each other: {}; nothing was changed \
             (apply the change in two steps, or report this plan as a skyplan bug)",
            blocked.join(", ")
        ),
    )
    .into())
}

/// Whether a change is a create-before-destroy replacement.
fn rolls(c: &Change) -> bool {
    c.action == Action::Replace && c.rolling_group.is_some()
}

/// The operations of a plan and what each waits for.
fn operations(changes: &[Change]) -> (Vec<Op>, Vec<Vec<usize>>) {
    let mut ops = Vec::new();
    let mut apply_op: HashMap<&Address, usize> = HashMap::new();
    // An address may have two deletes: the state's resource and an orphan
    // created for the same address (a destroy deletes both).
    let mut delete_op: HashMap<&Address, Vec<usize>> = HashMap::new();
    // Deletes of old objects: of rolling replacements, and left in the state.
    let mut old_op: HashMap<&Address, usize> = HashMap::new();
    let mut leftover_op: HashMap<&Address, usize> = HashMap::new();
    for (i, c) in changes.iter().enumerate() {
        if c.deposed {
            leftover_op.insert(&c.address, ops.len());
            ops.push(Op { change: i, kind: OpKind::Delete, deposed: true });
            continue;
        }
        if rolls(c) {
            old_op.insert(&c.address, ops.len());
            ops.push(Op { change: i, kind: OpKind::Delete, deposed: true });
        } else if matches!(c.action, Action::Delete | Action::Replace) {
            delete_op.entry(&c.address).or_default().push(ops.len());
            ops.push(Op { change: i, kind: OpKind::Delete, deposed: false });
        }
        let kind = match c.action {
            Action::Create | Action::Replace => OpKind::Create,
            Action::Update => OpKind::Update,
            Action::Delete | Action::NoOp => continue,
        };
        apply_op.insert(&c.address, ops.len());
        ops.push(Op { change: i, kind, deposed: false });
    }
    // Who depended on X when last applied: X's delete waits for them.
    let mut prior_dependents: HashMap<&Address, Vec<&Change>> = HashMap::new();
    for c in changes {
        for d in &c.prior_dependencies {
            prior_dependents.entry(d).or_default().push(c);
        }
    }
    // The deletes of a dependent's objects (deposed or current), if planned.
    let dependent_deletes = |dependent: &Change| -> Vec<usize> {
        if dependent.deposed {
            leftover_op.get(&dependent.address).copied().into_iter().collect()
        } else if let Some(dels) = delete_op.get(&dependent.address) {
            dels.clone()
        } else {
            old_op.get(&dependent.address).copied().into_iter().collect()
        }
    };
    let mut deps = vec![Vec::new(); ops.len()];
    // "A pure delete of Z waits for the update of Y that stops using Z":
    // wanted, but not essential, and with a replacement elsewhere it can
    // close a cycle (Y's update needs a replaced X's create, which waits for
    // X's delete, which waits for Z's delete). Added last, each only if it
    // closes no cycle.
    let mut soft = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let change = &changes[op.change];
        match op.kind {
            OpKind::Create | OpKind::Update => {
                deps[i].extend(change.dependencies.iter().filter_map(|d| apply_op.get(d)));
                deps[i].extend(delete_op.get(&change.address).into_iter().flatten());
                if let Some(&leftover) = leftover_op.get(&change.address) {
                    deps[i].push(leftover);
                }
            }
            OpKind::Delete if change.deposed => {}
            OpKind::Delete if op.deposed => {
                // The old object of a rolling replacement: after the new one,
                // and after what used it has moved on or gone.
                deps[i].push(apply_op[&change.address]);
                for dependent in prior_dependents.get(&change.address).into_iter().flatten() {
                    if rolls(dependent) && dependent.rolling_group == change.rolling_group {
                        // A later member of the same group (a control plane
                        // that joins after this one): the group's order
                        // already runs it after this one is done. Waiting
                        // for its old object here would wait on itself.
                        continue;
                    }
                    let dels = dependent_deletes(dependent);
                    if !dels.is_empty() {
                        deps[i].extend(dels);
                    } else if dependent.action == Action::Update && refers_to(dependent, &change.address) {
                        deps[i].push(apply_op[&dependent.address]);
                    }
                }
            }
            OpKind::Delete => {
                for dependent in prior_dependents.get(&change.address).into_iter().flatten() {
                    let dels: Vec<usize> = dependent_deletes(dependent).into_iter().filter(|&d| d != i).collect();
                    if !dels.is_empty() {
                        deps[i].extend(dels);
                    } else if dependent.action == Action::Update && dependent.holding.contains(&change.address) {
                        // The cloud keeps it while the dependent names it.
                        deps[i].push(apply_op[&dependent.address]);
                    } else if dependent.action == Action::Update && change.action == Action::Delete {
                        soft.push((i, apply_op[&dependent.address]));
                    }
                }
            }
        }
    }
    // Room first: a create of an exclusive kind waits for the plan's other
    // deletes of that kind (a new subnet's range may be an old one's).
    // Not a soft edge: without it the create fails half-way, so a plan
    // that cannot wait for the room is refused by `check_order` instead.
    let mut deletes_of: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if op.kind == OpKind::Delete && !op.deposed {
            deletes_of.entry(changes[op.change].kind.as_str()).or_default().push(i);
        }
    }
    for (i, op) in ops.iter().enumerate() {
        let change = &changes[op.change];
        if op.kind == OpKind::Create && change.exclusive && !rolls(change) {
            for &d in deletes_of.get(change.kind.as_str()).into_iter().flatten() {
                deps[i].push(d);
            }
        }
    }
    // One at a time in each rolling group: a member's new object waits for
    // the previous member's old one to be gone.
    let mut groups: std::collections::BTreeMap<&str, Vec<&Address>> = std::collections::BTreeMap::new();
    for c in changes.iter().filter(|c| rolls(c)) {
        groups.entry(c.rolling_group.as_deref().unwrap_or_default()).or_default().push(&c.address);
    }
    for members in groups.values_mut() {
        members.sort_by(|a, b| a.natural_cmp(b));
        for pair in members.windows(2) {
            soft.push((apply_op[pair[1]], old_op[pair[0]]));
        }
    }
    for (waiter, awaited) in soft {
        if !depends_on(&deps, awaited, waiter) {
            deps[waiter].push(awaited);
        }
    }
    for d in &mut deps {
        d.sort_unstable();
        d.dedup();
    }
    (ops, deps)
}

/// Whether `dependent`'s configuration names `address` (a reference to one
/// of its attributes), rather than only coming after it (`depends_on`):
/// only then does its update move it off `address`'s old object. An
/// unreadable reference counts as naming it.
fn refers_to(dependent: &Change, address: &Address) -> bool {
    dependent.config.as_ref().is_some_and(|attrs| {
        attrs.values().any(|v| value::references(v).map_or(true, |refs| refs.iter().any(|r| &r.target == address)))
    })
}

/// Whether task `from` waits, directly or through others, for task `to`.
fn depends_on(deps: &[Vec<usize>], from: usize, to: usize) -> bool {
    let mut seen = vec![false; deps.len()];
    let mut stack = vec![from];
    while let Some(t) = stack.pop() {
        if t == to {
            return true;
        }
        if !std::mem::replace(&mut seen[t], true) {
            stack.extend(deps[t].iter().copied());
        }
    }
    false
}

/// An error without a leading mention of its own address (`ADDRESS: ...`
/// or `creating ADDRESS: ...`): it is reported under the address already,
/// and saying it twice reads as noise.
fn without_address(error: String, address: &Address) -> String {
    let name = address.to_string();
    let Some(at) = error.find(&name) else { return error };
    let prefix = &error[..at];
    let rest = &error[at + name.len()..];
    let short_prefix = prefix.is_empty() || (prefix.ends_with(' ') && !prefix.trim_end().contains(' '));
    match rest.strip_prefix(": ") {
        Some(rest) if short_prefix && !rest.is_empty() => rest.to_string(),
        _ => error,
    }
}

static TOKEN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A token unique to one operation, usable as an AWS ClientToken (<= 64 ASCII).
fn client_token(lineage: &str, address: &Address) -> String {
    use std::hash::BuildHasher;
    let seed = (address, TOKEN_COUNTER.fetch_add(1, Ordering::Relaxed), std::time::SystemTime::now());
    let hash = std::collections::hash_map::RandomState::new().hash_one(seed);
    let lineage: String = lineage.chars().filter(|c| c.is_ascii_alphanumeric()).take(16).collect();
    format!("skyplan-{lineage}-{hash:016x}")
}

struct Shared {
    changes: Vec<Change>,
    providers: Providers,
    writer: Writer,
    lineage: String,
    /// The attributes each resource has now: the state's, then each result.
    live: Mutex<HashMap<Address, Attrs>>,
    events: EventSink,
    stop: Arc<AtomicBool>,
    before_recording: Option<RecordingHook>,
    redactor: Redactor,
    /// The error of each failed operation, by operation index.
    errors: Mutex<HashMap<usize, String>>,
    /// The state's records of the resources replaced create-before-destroy:
    /// kept as deposed once their replacement exists.
    replaced: HashMap<Address, ResourceState>,
    /// What each operation waits for, by operation index (for its
    /// `Started` event).
    waits_for: Vec<Vec<(Address, OpKind)>>,
}

/// Apply a plan to the state it was made against, persisting through
/// `writer` after every finished operation.
pub async fn apply(
    plan: &Plan,
    state: &State,
    providers: &Providers,
    writer: &Writer,
    options: ApplyOptions,
) -> ApplyReport {
    let Schedule { ops, deps, priority } = schedule(plan, providers);
    let stuck = dag::blocked(&deps);
    if !stuck.is_empty() {
        // Never walked: it would stop half-way with these left and nothing
        // running. Callers check this at plan time (`check_order`).
        let mut report = ApplyReport::default();
        let error = format!("no order can apply this plan: {}; nothing was changed", blocked(plan).join(", "));
        for (i, op) in ops.iter().enumerate() {
            let address = plan.changes[op.change].address.clone();
            if stuck.contains(&i) {
                report.failed.push((address, op.kind, error.clone()));
            } else {
                report.skipped.push((address, op.kind));
            }
        }
        return report;
    }

    let waits_for = deps
        .iter()
        .map(|ds| ds.iter().map(|&d| (plan.changes[ops[d].change].address.clone(), ops[d].kind)).collect())
        .collect();
    let live =
        state.resources.iter().filter_map(|(a, r)| Some((a.parse::<Address>().ok()?, r.attributes.clone()))).collect();
    let shared = Arc::new(Shared {
        changes: plan.changes.clone(),
        providers: providers.clone(),
        writer: writer.clone(),
        lineage: plan.lineage.clone(),
        live: Mutex::new(live),
        events: options.events.clone(),
        stop: options.stop.clone(),
        errors: Mutex::new(HashMap::new()),
        before_recording: options.before_recording.clone(),
        redactor: options.redactor.clone(),
        replaced: plan
            .changes
            .iter()
            .filter(|c| rolls(c))
            .filter_map(|c| {
                let mut record = state.resources.get(&c.address.to_string())?.clone();
                record.attributes = c.before.clone().unwrap_or(record.attributes);
                Some((c.address.clone(), record))
            })
            .collect(),
        waits_for,
    });
    let ops = Arc::new(ops);
    let outcomes = {
        let ops = ops.clone();
        let shared = shared.clone();
        dag::walk(&deps, &priority, options.parallelism, options.stop.clone(), move |i, release| {
            let shared = shared.clone();
            let ops = ops.clone();
            async move { run_op(&shared, i, &ops[i], release).await }
        })
        .await
    };

    let mut report = ApplyReport::default();
    let mut errors = std::mem::take(&mut *shared.errors.lock().expect("errors"));
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let op = &ops[i];
        let address = shared.changes[op.change].address.clone();
        match outcome {
            Outcome::Succeeded => report.succeeded.push((address, op.kind)),
            Outcome::Failed => report.failed.push((address, op.kind, errors.remove(&i).unwrap_or_default())),
            Outcome::Skipped => {
                (shared.events)(&Event::Skipped { address: address.clone(), op: op.kind });
                report.skipped.push((address, op.kind))
            }
            Outcome::NotStarted => report.not_started.push((address, op.kind)),
        }
    }
    report
}

/// A create that failed: its recorded intent is settled now, so the next run
/// does not take the failure for an interrupted create and adopt whatever it
/// finds. The provider looks for what the create made (an error answer
/// usually means nothing: the cloud refused it; a create of several calls
/// may have made the resource before a later call failed). Nothing found:
/// the intent is forgotten. Found, or the lookup failed: the intent stays,
/// and the next run adopts what the provider's lookup finds, which is only
/// ever what this create made (`Provider::find`).
async fn settle_failed_create(
    shared: &Shared,
    provider: &dyn crate::provider::Provider,
    change: &Change,
    inputs: &Attrs,
) {
    if let Ok(None) = provider.find(&change.kind, &change.address, inputs).await {
        // If this commit fails, the intent stays: the next run settles it
        // the same way.
        let _ = shared.writer.commit(vec![Mutation::Settle(change.address.to_string())]).await;
    }
}

/// Run one operation. Once the cloud has done it, its parallelism slot is
/// released: recording the result waits for the disk, not the cloud, and
/// dependents still wait until it is recorded.
async fn run_op(shared: &Shared, index: usize, op: &Op, slot: dag::Release) -> bool {
    let change = &shared.changes[op.change];
    let address = &change.address;
    let started = Instant::now();
    let waits_for = shared.waits_for[index].clone();
    (shared.events)(&Event::Started { address: address.clone(), op: op.kind, waits_for });
    let fail = |error: String| {
        let error = without_address(error, address);
        let error = if shared.redactor.is_empty() { error } else { shared.redactor.text(&error) };
        shared.errors.lock().expect("errors").insert(index, error.clone());
        (shared.events)(&Event::Failed { address: address.clone(), op: op.kind, error });
        false
    };
    let Some(provider) = shared.providers.for_kind(&change.kind) else {
        return fail(format!("no provider serves resource type `{}`", change.kind));
    };
    let events = shared.events.clone();
    let kind = op.kind;
    let sink = Arc::new(move |p: Progress| {
        events(&Event::Progress { address: p.address, op: kind, message: p.message, elapsed: started.elapsed() });
    });
    let ctx = OpContext::new(address.clone(), client_token(&shared.lineage, address), Some(sink));

    match op.kind {
        OpKind::Delete => {
            let prior = change.before.clone().unwrap_or_default();
            if let Err(e) = provider.delete(&ctx, &prior).await {
                return fail(e.message);
            }
            slot.release();
            if change.orphan {
                // The state never recorded it: nothing to remove there, and
                // the state's resource of the same address (if any) stays.
                (shared.events)(&Event::Finished {
                    address: address.clone(),
                    op: op.kind,
                    id: None,
                    elapsed: started.elapsed(),
                });
                return true;
            }
            if let Some(hook) = &shared.before_recording {
                hook(address, op.kind);
            }
            let mutation = if op.deposed {
                // The address's current object (a replacement) stays.
                Mutation::DeleteDeposed(address.to_string())
            } else {
                shared.live.lock().expect("live values").remove(address);
                Mutation::Remove(address.to_string())
            };
            if let Err(e) = shared.writer.commit(vec![mutation]).await {
                shared.stop.store(true, Ordering::SeqCst);
                return fail(format!("deleted, but the state could not be saved: {e}"));
            }
            (shared.events)(&Event::Finished {
                address: address.clone(),
                op: op.kind,
                id: None,
                elapsed: started.elapsed(),
            });
            true
        }
        OpKind::Create | OpKind::Update => {
            let config = change.config.clone().unwrap_or_default();
            let resolved = {
                let live = shared.live.lock().expect("live values");
                let mut missing = Vec::new();
                let mut lookup = |r: &Reference| match live.get(&r.target).and_then(|a| a.get(&r.attr)) {
                    Some(v) => v.clone(),
                    None => {
                        missing.push(r.to_string());
                        value::unknown()
                    }
                };
                let resolved = value::resolve_attrs(&config, &mut lookup);
                if !missing.is_empty() || resolved.values().any(contains_unknown) {
                    drop(live);
                    return fail(format!("cannot resolve {} after its dependencies were applied", missing.join(", ")));
                }
                resolved
            };
            if op.kind == OpKind::Create {
                // Record the intent first: if this process dies during the
                // call, the next run finds what it made instead of making it
                // twice.
                let mut inputs = resolved.clone();
                shared.redactor.attrs(&mut inputs);
                let intent = PendingCreate {
                    kind: change.kind.clone(),
                    provider: provider.name().to_string(),
                    client_token: ctx.client_token.clone(),
                    inputs,
                    dependencies: change.dependencies.iter().map(|d| d.to_string()).collect(),
                };
                if let Err(e) = shared.writer.commit(vec![Mutation::Intend(address.to_string(), intent)]).await {
                    shared.stop.store(true, Ordering::SeqCst);
                    return fail(format!("not created: the state could not be saved: {e}"));
                }
            }
            let result = if op.kind == OpKind::Update {
                let prior = shared
                    .live
                    .lock()
                    .expect("live values")
                    .get(address)
                    .cloned()
                    .or_else(|| change.before.clone())
                    .unwrap_or_default();
                provider.update(&ctx, &prior, &resolved).await
            } else {
                provider.create(&ctx, &resolved).await
            };
            let attributes = match result {
                Ok(a) => a,
                Err(e) if op.kind == OpKind::Create => {
                    settle_failed_create(shared, provider.as_ref(), change, &resolved).await;
                    return fail(e.message);
                }
                Err(e) => return fail(e.message),
            };
            slot.release();
            if let Some(hook) = &shared.before_recording {
                hook(address, op.kind);
            }
            let id = match attributes.get("id") {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => return fail(format!("provider {} returned no id", provider.name())),
            };
            // Dependents resolve against the real values; the state gets
            // them masked.
            shared.live.lock().expect("live values").insert(address.clone(), attributes.clone());
            let (mut inputs, mut attributes) = (resolved, attributes);
            shared.redactor.attrs(&mut inputs);
            shared.redactor.attrs(&mut attributes);
            let record = ResourceState {
                kind: change.kind.clone(),
                provider: provider.name().to_string(),
                id: id.clone(),
                inputs,
                attributes,
                dependencies: change.dependencies.iter().map(|d| d.to_string()).collect(),
            };
            let mut mutations = vec![Mutation::Upsert(address.to_string(), record)];
            if let Some(old) = shared.replaced.get(address).filter(|_| op.kind == OpKind::Create) {
                // In the same commit: the old object is never unrecorded.
                mutations.push(Mutation::Depose(address.to_string(), old.clone()));
            }
            if let Err(e) = shared.writer.commit(mutations).await {
                shared.stop.store(true, Ordering::SeqCst);
                return fail(format!("applied (id {id}), but the state could not be saved: {e}"));
            }
            (shared.events)(&Event::Finished {
                address: address.clone(),
                op: op.kind,
                id: Some(id),
                elapsed: started.elapsed(),
            });
            true
        }
    }
}

#[cfg(test)]
mod message_tests {
    use super::*;

    #[test]
    fn errors_do_not_repeat_their_address() {
        let a: Address = "aws_instance.control_plane[0]".parse().unwrap();
        let strip = |e: &str| without_address(e.to_string(), &a);
        assert_eq!(strip("creating aws_instance.control_plane[0]: capacity"), "capacity");
        assert_eq!(strip("aws_instance.control_plane[0]: capacity"), "capacity");
        assert_eq!(strip("capacity"), "capacity");
        // Mid-sentence mentions stay.
        let kept = "the subnet of aws_instance.control_plane[0]: gone";
        assert_eq!(strip(kept), kept);
    }
}
