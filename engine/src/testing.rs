//! Test helpers: an in-memory provider that records every operation.

use std::collections::BTreeSet;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use crate::provider::{OpContext, Provider, ProviderError, ReadRequest, Schema};
use crate::spec::{Source, Spec};
use crate::value::Attrs;
use crate::{graph::ResourceGraph, Providers};

/// Serves `test_*` types; `replace_on` and `fail` work as in the sim.
#[derive(Default)]
pub struct Fake {
    pub log: Mutex<Vec<String>>,
    next: Mutex<u64>,
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
        _address: &crate::Address,
        _inputs: &Attrs,
    ) -> Result<Option<Attrs>, ProviderError> {
        Ok(self.found.lock().unwrap().clone())
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
