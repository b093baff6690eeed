//! The Provider trait: the only way the engine touches a cloud.
//!
//! The engine plans and schedules; a provider creates, reads, updates and
//! deletes one kind of thing somewhere else (the simulated cloud, AWS). The
//! engine never learns what a resource type means beyond its [`Schema`].
//! Implementations live in `providers/`; the binary wires them into a
//! [`Providers`] registry.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;

use crate::address::Address;
use crate::value::Attrs;

/// What the planner must know about one resource to diff it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    /// Attributes whose change cannot be made in place: the resource is
    /// replaced (deleted, then created).
    pub replace_on: BTreeSet<String>,
    /// Attributes the provider computes (always including `id`): references
    /// may name them, and they are unknown until the resource exists.
    pub computed: BTreeSet<String>,
    /// Attributes naming other resources (by id) that the cloud will not
    /// delete while this resource names them (an instance's subnet and
    /// security groups): such a resource is deleted only once this one has
    /// moved off it or is gone, and when it is replaced old first, this one
    /// is replaced with it.
    pub holds: BTreeSet<String>,
    /// The cloud keeps values of this kind exclusive (names, address
    /// ranges): in a plan that deletes some of them, creates of the kind
    /// wait for those deletes where an order allows (room first).
    pub exclusive: bool,
}

/// Something that happened during one operation, for progress display.
#[derive(Debug, Clone)]
pub struct Progress {
    pub address: Address,
    pub message: String,
}

pub type ProgressSink = Arc<dyn Fn(Progress) + Send + Sync>;

/// Everything an operation on one resource is given besides its attributes.
#[derive(Clone)]
pub struct OpContext {
    pub address: Address,
    /// An idempotency token, unique to this operation on this resource;
    /// providers pass it as ClientToken where the cloud supports one.
    pub client_token: String,
    progress: Option<ProgressSink>,
}

impl OpContext {
    pub fn new(address: Address, client_token: String, progress: Option<ProgressSink>) -> Self {
        OpContext { address, client_token, progress }
    }

    /// Tell the user what this operation is doing now ("waiting for NAT
    /// gateway nat-0abc to be available").
    pub fn report(&self, message: impl Into<String>) {
        if let Some(sink) = &self.progress {
            sink(Progress { address: self.address.clone(), message: message.into() });
        }
    }
}

/// A failed provider call. The message is shown to the user next to the
/// resource address, so it should say what failed and, where it can, why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    pub message: String,
}

impl ProviderError {
    pub fn new(message: impl Into<String>) -> Self {
        ProviderError { message: message.into() }
    }
}

/// One resource to refresh: its address, type and the attributes recorded in
/// the state (which include `id`).
#[derive(Debug, Clone)]
pub struct ReadRequest {
    pub address: Address,
    pub kind: String,
    pub prior: Attrs,
}

/// A resource the cloud holds that carries a set of ownership tags and the
/// provider's own record of the address it was created for.
#[derive(Debug, Clone, PartialEq)]
pub struct Owned {
    /// The address the provider created it for.
    pub address: Address,
    pub kind: String,
    /// As a refresh reads them, including `id`: enough to delete it.
    pub attributes: Attrs,
}

/// A resource a plan is about to create, as far as its attributes are known
/// at plan time (references to what is not created yet are unknown).
#[derive(Debug, Clone)]
pub struct NewResource {
    pub address: Address,
    pub kind: String,
    pub attrs: Attrs,
}

/// A name a plan is about to use that something not this cluster's (or not
/// skyplan's) already holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameConflict {
    pub address: Address,
    /// What holds it, for the user: "launch template `adv-a-b-w`
    /// (lt-0abc), tagged as cluster adv-a's (created for ...)".
    pub message: String,
}

#[async_trait]
pub trait Provider: Send + Sync {
    /// A short name for messages and the state (`sim`, `aws`).
    fn name(&self) -> &'static str;

    /// Whether this provider serves resources of type `kind`.
    fn serves(&self, kind: &str) -> bool;

    /// How to diff a resource of type `kind` with these (unresolved) attributes.
    fn schema(&self, kind: &str, attrs: &Attrs) -> Schema;

    /// How long creating or changing this resource usually takes. The
    /// executor starts resources on the longest remaining path first, so
    /// slow ones (NAT gateways) do not end up waiting behind fast ones.
    fn estimated_duration(&self, _kind: &str, _attrs: &Attrs) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    /// Static checks of one resource's attributes, without any cloud call.
    /// Each error names the attribute it is about.
    fn validate(&self, _address: &Address, _attrs: &Attrs) -> Vec<String> {
        Vec::new()
    }

    /// Create the resource; return its attributes as the cloud now has them,
    /// including `id` and every computed attribute of the schema.
    async fn create(&self, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError>;

    /// Change the resource in place from `prior` (the state's attributes) to
    /// `attrs`; return the resulting attributes.
    async fn update(&self, ctx: &OpContext, prior: &Attrs, attrs: &Attrs) -> Result<Attrs, ProviderError>;

    /// Delete the resource. A resource that is already gone is not an error.
    async fn delete(&self, ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError>;

    /// Find the resource that a create of `address` with `inputs` may have
    /// made when the run that sent it was killed before recording the
    /// result: providers tag (or name) what they create with its address,
    /// and look it up by that. `Some` attributes (as `create` would have
    /// returned them) are adopted into the state instead of creating a
    /// duplicate.
    async fn find(&self, kind: &str, address: &Address, inputs: &Attrs) -> Result<Option<Attrs>, ProviderError>;

    /// Everything of the types in `kinds` that this provider created and
    /// that carries every one of `tags` (a cluster's ownership tags),
    /// except the resources whose id is in `known` (what the state records,
    /// and ids the caller must never touch). Only what the provider itself
    /// marked with an address of the same type counts: a resource that
    /// merely carries the tags (a user's own VPC, tagged for the cluster) is
    /// never returned. Providers that cannot search by tag return nothing.
    async fn owned(
        &self,
        _kinds: &BTreeSet<String>,
        _tags: &BTreeMap<String, String>,
        _known: &BTreeSet<String>,
    ) -> Result<Vec<Owned>, ProviderError> {
        Ok(Vec::new())
    }

    /// Of `creates`, those whose name (where the cloud makes names unique:
    /// launch templates, auto scaling groups, load balancers, security
    /// groups in a VPC) is already held by something this cluster did not
    /// create. Checked at plan time so that such a plan fails before any
    /// change instead of half-way; default: nothing to check.
    async fn name_conflicts(&self, _creates: &[NewResource]) -> Result<Vec<NameConflict>, ProviderError> {
        Ok(Vec::new())
    }

    /// Requests sent to the cloud so far in this process, per operation
    /// (`ec2:DescribeVpcs`), for `-v` output and benchmarks. Providers that
    /// make no remote calls report none.
    fn request_counts(&self) -> std::collections::BTreeMap<String, u64> {
        std::collections::BTreeMap::new()
    }

    /// What the end of a run should say about how the provider reached its
    /// cloud (requests retried after throttling or lost answers), one line
    /// each; nothing by default.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }

    /// Read the live attributes of many resources at once (providers batch by
    /// kind). One entry per request, in order: `None` when it no longer exists.
    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError>;
}

/// The providers available to a run, looked up by resource type.
#[derive(Clone, Default)]
pub struct Providers {
    list: Vec<Arc<dyn Provider>>,
}

impl Providers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, provider: Arc<dyn Provider>) -> Self {
        self.list.push(provider);
        self
    }

    pub fn all(&self) -> &[Arc<dyn Provider>] {
        &self.list
    }

    pub fn for_kind(&self, kind: &str) -> Option<&Arc<dyn Provider>> {
        self.list.iter().find(|p| p.serves(kind))
    }
}
