//! Test helpers: an in-memory provider that records every operation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use crate::provider::{OpContext, Owned, Provider, ProviderError, ReadRequest, Schema};
use crate::spec::{Source, Spec};
use crate::value::Attrs;
use crate::{graph::ResourceGraph, Providers};

/// Serves `test_*` types; `replace_on` and `fail` work as in the sim.
#[derive(Default)]
pub struct Fake {
    pub log: Mutex<Vec<String>>,
    /// The attributes each create and update was given.
    pub sent: Mutex<Vec<Attrs>>,
    next: Mutex<u64>,
    /// What the cloud holds under the ownership tags, by the address it was
    /// created for: `owned` lists it, `find` finds it by address.
    pub tagged: Mutex<Vec<Owned>>,
    /// The kinds each `owned` call asked for.
    pub owned_asked: Mutex<Vec<BTreeSet<String>>>,
    /// What `find` answers (nothing unless a test sets it).
    pub found: Mutex<Option<Attrs>>,
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
        let replace_on = attrs
            .get("replace_on")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        Schema { replace_on, computed: BTreeSet::from(["id".to_string(), "arn".to_string()]) }
    }
    async fn create(&self, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        self.log.lock().unwrap().push(format!("create {}", ctx.address));
        self.sent.lock().unwrap().push(attrs.clone());
        if attrs.get("fail").and_then(Value::as_str) == Some("create") {
            return Err(ProviderError::new("boom"));
        }
        let mut n = self.next.lock().unwrap();
        *n += 1;
        let mut out = attrs.clone();
        out.insert("id".into(), Value::String(format!("f-{n}")));
        out.insert("arn".into(), Value::String(format!("arn:f-{n}")));
        Ok(out)
    }
    async fn update(&self, ctx: &OpContext, prior: &Attrs, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        self.log.lock().unwrap().push(format!("update {}", ctx.address));
        self.sent.lock().unwrap().push(attrs.clone());
        let mut out = attrs.clone();
        out.insert("id".into(), prior["id"].clone());
        out.insert("arn".into(), prior["arn"].clone());
        Ok(out)
    }
    async fn delete(&self, ctx: &OpContext, _prior: &Attrs) -> Result<(), ProviderError> {
        self.log.lock().unwrap().push(format!("delete {}", ctx.address));
        Ok(())
    }
    async fn find(
        &self,
        _kind: &str,
        address: &crate::Address,
        _inputs: &Attrs,
    ) -> Result<Option<Attrs>, ProviderError> {
        if let Some(found) = self.found.lock().unwrap().clone() {
            return Ok(Some(found));
        }
        let tagged = self.tagged.lock().unwrap();
        Ok(tagged.iter().find(|o| &o.address == address).map(|o| o.attributes.clone()))
    }
    async fn owned(
        &self,
        kinds: &BTreeSet<String>,
        tags: &BTreeMap<String, String>,
        known: &BTreeSet<String>,
    ) -> Result<Vec<Owned>, ProviderError> {
        assert!(!tags.is_empty(), "asked with the ownership tags");
        self.owned_asked.lock().unwrap().push(kinds.clone());
        let tagged = self.tagged.lock().unwrap();
        Ok(tagged
            .iter()
            .filter(|o| kinds.contains(&o.kind) && !known.contains(o.attributes["id"].as_str().unwrap()))
            .cloned()
            .collect())
    }
    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
        Ok(requests.iter().map(|r| Some(r.prior.clone())).collect())
    }
}

pub fn spec(text: &str) -> Spec {
    Spec::parse(Source { path: "test.toml".into(), text: text.to_string() }).expect("test spec parses")
}

pub fn graph(text: &str, fake: std::sync::Arc<Fake>) -> Result<ResourceGraph, crate::Diagnostics> {
    ResourceGraph::build(spec(text).resources, &Providers::new().with(fake))
}
