//! Test helpers: an in-memory cloud behind a provider that records every
//! operation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use crate::provider::{NameConflict, NewResource, OpContext, Owned, Provider, ProviderError, ReadRequest, Schema};
use crate::spec::{Source, Spec};
use crate::value::Attrs;
use crate::{graph::ResourceGraph, Providers};

/// An in-memory cloud serving `test_*` types: create makes an object (and
/// remembers the address it was made for, as a provider's address tag
/// does), delete removes it, read and find read what is there. `replace_on`
/// works as in the sim; `fail = "create"` makes the cloud refuse the create
/// (nothing is made), `fail = "after_create"` makes the object and then
/// fails (as a create of several calls whose later call fails).
#[derive(Default)]
pub struct Fake {
    pub log: Mutex<Vec<String>>,
    /// The attributes each create and update was given.
    pub sent: Mutex<Vec<Attrs>>,
    next: Mutex<u64>,
    /// Everything the cloud holds, each with the address it was created
    /// for: `owned` lists it, `find` finds it by address, `read` reads it.
    /// Tests may put objects here that no run made.
    pub cloud: Mutex<Vec<Owned>>,
    /// The kinds each `owned` call asked for.
    pub owned_asked: Mutex<Vec<BTreeSet<String>>>,
    /// Crash point: after this many more creates, the next one makes its
    /// object and then fails, as if the process had died before recording
    /// it (the result never reaches the state).
    pub crash_after: Mutex<Option<usize>>,
}

fn id_of(attrs: &Attrs) -> Option<&str> {
    attrs.get("id").and_then(Value::as_str)
}

impl Fake {
    /// The ids of everything the cloud holds.
    pub fn ids(&self) -> BTreeSet<String> {
        self.cloud.lock().unwrap().iter().filter_map(|o| id_of(&o.attributes).map(str::to_string)).collect()
    }
}

#[async_trait]
impl Provider for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn serves(&self, kind: &str) -> bool {
        kind.starts_with("test_")
    }
    fn schema(&self, _kind: &str, attrs: &Attrs) -> Schema {
        let list = |name: &str| -> BTreeSet<String> {
            attrs
                .get(name)
                .and_then(Value::as_array)
                .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        Schema {
            replace_on: list("replace_on"),
            computed: BTreeSet::from(["id".to_string(), "arn".to_string()]),
            holds: list("holds"),
            exclusive: attrs.get("exclusive").and_then(Value::as_bool).unwrap_or(false),
        }
    }
    async fn create(&self, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        self.log.lock().unwrap().push(format!("create {}", ctx.address));
        self.sent.lock().unwrap().push(attrs.clone());
        let fail = attrs.get("fail").and_then(Value::as_str);
        if fail == Some("create") {
            return Err(ProviderError::new("boom"));
        }
        let mut n = self.next.lock().unwrap();
        *n += 1;
        let mut out = attrs.clone();
        out.insert("id".into(), Value::String(format!("f-{n}")));
        out.insert("arn".into(), Value::String(format!("arn:f-{n}")));
        let kind = ctx.address.kind.clone();
        self.cloud.lock().unwrap().push(Owned { address: ctx.address.clone(), kind, attributes: out.clone() });
        if fail == Some("after_create") {
            return Err(ProviderError::new("made, then boom"));
        }
        let mut crash = self.crash_after.lock().unwrap();
        match *crash {
            Some(0) => {
                *crash = None;
                Err(ProviderError::new("crashed before recording"))
            }
            Some(n) => {
                *crash = Some(n - 1);
                Ok(out)
            }
            None => Ok(out),
        }
    }
    async fn update(&self, ctx: &OpContext, prior: &Attrs, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        self.log.lock().unwrap().push(format!("update {}", ctx.address));
        self.sent.lock().unwrap().push(attrs.clone());
        let mut out = attrs.clone();
        out.insert("id".into(), prior["id"].clone());
        out.insert("arn".into(), prior["arn"].clone());
        let mut cloud = self.cloud.lock().unwrap();
        let Some(object) = cloud.iter_mut().find(|o| id_of(&o.attributes) == id_of(prior)) else {
            return Err(ProviderError::new(format!("{} does not exist", prior["id"])));
        };
        object.attributes = out.clone();
        Ok(out)
    }
    async fn delete(&self, ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
        self.log.lock().unwrap().push(format!("delete {}", ctx.address));
        self.cloud.lock().unwrap().retain(|o| id_of(&o.attributes) != id_of(prior));
        Ok(())
    }
    async fn find(
        &self,
        kind: &str,
        address: &crate::Address,
        _inputs: &Attrs,
    ) -> Result<Option<Attrs>, ProviderError> {
        // The latest object made for the address (a create-before-destroy
        // replacement's new object, not the old one).
        let cloud = self.cloud.lock().unwrap();
        Ok(cloud.iter().rev().find(|o| &o.address == address && o.kind == kind).map(|o| o.attributes.clone()))
    }
    async fn owned(
        &self,
        kinds: &BTreeSet<String>,
        tags: &BTreeMap<String, String>,
        known: &BTreeSet<String>,
    ) -> Result<Vec<Owned>, ProviderError> {
        assert!(!tags.is_empty(), "asked with the ownership tags");
        self.owned_asked.lock().unwrap().push(kinds.clone());
        let cloud = self.cloud.lock().unwrap();
        Ok(cloud
            .iter()
            .filter(|o| kinds.contains(&o.kind) && !known.contains(id_of(&o.attributes).unwrap_or_default()))
            .cloned()
            .collect())
    }
    /// A create whose `name` an object of the same type made for another
    /// address holds (as another cluster's).
    async fn name_conflicts(&self, creates: &[NewResource]) -> Result<Vec<NameConflict>, ProviderError> {
        let cloud = self.cloud.lock().unwrap();
        Ok(creates
            .iter()
            .filter_map(|c| {
                let name = c.attrs.get("name").and_then(Value::as_str)?;
                let holder = cloud.iter().find(|o| {
                    o.kind == c.kind
                        && o.address != c.address
                        && o.attributes.get("name").and_then(Value::as_str) == Some(name)
                })?;
                let message = format!("`{name}` is held by {} ({})", holder.address, holder.attributes["id"]);
                Some(NameConflict { address: c.address.clone(), message })
            })
            .collect())
    }
    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
        let cloud = self.cloud.lock().unwrap();
        Ok(requests
            .iter()
            .map(|r| cloud.iter().find(|o| id_of(&o.attributes) == id_of(&r.prior)).map(|o| o.attributes.clone()))
            .collect())
    }
}

pub fn spec(text: &str) -> Spec {
    Spec::parse(Source { path: "test.toml".into(), text: text.to_string() }).expect("test spec parses")
}

pub fn graph(text: &str, fake: std::sync::Arc<Fake>) -> Result<ResourceGraph, crate::Diagnostics> {
    ResourceGraph::build(spec(text).resources, &Providers::new().with(fake))
}
