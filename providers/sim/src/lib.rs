//! The simulated cloud: a [`Provider`] for `sim_resource`, with latency and
//! fault injection, for engine tests and benchmarks at scales no emulator
//! reaches. It never stands in for AWS behaviour.
//!
//! Attributes it understands (all others are stored and echoed back):
//! `delay_ms` (each create, update and delete takes that long), `replace_on`
//! (attributes whose change forces replacement), `fail` (`"create"`,
//! `"update"` or `"delete"`: that operation fails). `id` is computed.
//!
//! The cloud's contents persist in a JSON file so separate runs see one
//! cloud. Writes are group-committed: an operation returns once a write that
//! includes it has finished, and concurrent operations share writes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use skyplan_engine::{Address, Attrs, OpContext, Provider, ProviderError, ReadRequest, Schema};

pub const KIND: &str = "sim_resource";

/// The simulated cloud's contents: every resource by id.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Cloud {
    pub next_id: u64,
    pub resources: BTreeMap<String, SimObject>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimObject {
    pub address: String,
    pub attrs: Attrs,
}

struct Inner {
    cloud: Cloud,
    /// Bumped on every change; `flushed` is the generation last written.
    generation: u64,
}

pub struct SimProvider {
    path: PathBuf,
    inner: Mutex<Inner>,
    flushed: tokio::sync::Mutex<u64>,
}

impl SimProvider {
    /// Open (or start) the simulated cloud kept in `path`.
    pub fn open(path: &Path) -> Result<SimProvider, ProviderError> {
        let cloud = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                ProviderError::new(format!(
                    "simulated cloud {} is corrupt: {e}",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Cloud::default(),
            Err(e) => {
                return Err(ProviderError::new(format!(
                    "cannot read simulated cloud {}: {e}",
                    path.display()
                )))
            }
        };
        Ok(SimProvider {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner {
                cloud,
                generation: 0,
            }),
            flushed: tokio::sync::Mutex::new(0),
        })
    }

    /// A copy of the cloud's current contents.
    pub fn snapshot(&self) -> Cloud {
        self.inner.lock().expect("sim cloud").cloud.clone()
    }

    fn mutate<T>(&self, f: impl FnOnce(&mut Cloud) -> T) -> (T, u64) {
        let mut inner = self.inner.lock().expect("sim cloud");
        let out = f(&mut inner.cloud);
        inner.generation += 1;
        (out, inner.generation)
    }

    /// Return once a write including generation `generation` is on disk.
    async fn flush(&self, generation: u64) -> Result<(), ProviderError> {
        let mut flushed = self.flushed.lock().await;
        if *flushed >= generation {
            return Ok(());
        }
        let (bytes, upto) = {
            let inner = self.inner.lock().expect("sim cloud");
            (
                serde_json::to_vec(&inner.cloud).expect("cloud serializes"),
                inner.generation,
            )
        };
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            // Per-process temp name: two runs on one cloud never share it.
            let mut tmp = path.clone().into_os_string();
            tmp.push(format!(".tmp.{}", std::process::id()));
            std::fs::write(&tmp, &bytes)?;
            std::fs::rename(&tmp, &path)
        })
        .await
        .expect("flush task")
        .map_err(|e| {
            ProviderError::new(format!(
                "cannot write simulated cloud {}: {e}",
                self.path.display()
            ))
        })?;
        *flushed = upto;
        Ok(())
    }
}

fn delay(attrs: &Attrs) -> Duration {
    Duration::from_millis(attrs.get("delay_ms").and_then(Value::as_u64).unwrap_or(0))
}

async fn simulate(attrs: &Attrs, op: &str, address: &Address) -> Result<(), ProviderError> {
    let d = delay(attrs);
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
    if attrs.get("fail").and_then(Value::as_str) == Some(op) {
        return Err(ProviderError::new(format!(
            "injected failure: {op} of {address} fails (fail = \"{op}\")"
        )));
    }
    Ok(())
}

#[async_trait]
impl Provider for SimProvider {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn serves(&self, kind: &str) -> bool {
        kind == KIND
    }

    fn schema(&self, _kind: &str, attrs: &Attrs) -> Schema {
        let replace_on = attrs
            .get("replace_on")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Schema {
            replace_on,
            computed: BTreeSet::from(["id".to_string()]),
        }
    }

    fn validate(&self, _address: &Address, attrs: &Attrs) -> Vec<String> {
        let mut problems = Vec::new();
        if attrs.contains_key("id") {
            problems.push("id is computed by the simulated cloud and cannot be set".to_string());
        }
        if let Some(v) = attrs.get("delay_ms") {
            if v.as_u64().is_none() {
                problems.push(format!(
                    "delay_ms must be a whole number of milliseconds, not {v}"
                ));
            }
        }
        if let Some(v) = attrs.get("replace_on") {
            if !v.as_array().is_some_and(|l| l.iter().all(Value::is_string)) {
                problems.push(format!(
                    "replace_on must be a list of attribute names, not {v}"
                ));
            }
        }
        if let Some(v) = attrs.get("fail") {
            if !matches!(v.as_str(), Some("create" | "update" | "delete")) {
                problems.push(format!(
                    "fail must be \"create\", \"update\" or \"delete\", not {v}"
                ));
            }
        }
        problems
    }

    fn estimated_duration(&self, _kind: &str, attrs: &Attrs) -> Duration {
        delay(attrs)
    }

    async fn create(&self, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        simulate(attrs, "create", &ctx.address).await?;
        let (out, generation) = self.mutate(|cloud| {
            cloud.next_id += 1;
            let id = format!("sim-{}", cloud.next_id);
            let mut stored = attrs.clone();
            stored.insert("id".into(), Value::String(id.clone()));
            cloud.resources.insert(
                id,
                SimObject {
                    address: ctx.address.to_string(),
                    attrs: stored.clone(),
                },
            );
            stored
        });
        self.flush(generation).await?;
        Ok(out)
    }

    async fn update(
        &self,
        ctx: &OpContext,
        prior: &Attrs,
        attrs: &Attrs,
    ) -> Result<Attrs, ProviderError> {
        simulate(attrs, "update", &ctx.address).await?;
        let id = prior
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let (out, generation) = self.mutate(|cloud| {
            let object = cloud.resources.get_mut(&id)?;
            let mut stored = attrs.clone();
            stored.insert("id".into(), Value::String(id.clone()));
            object.attrs = stored.clone();
            Some(stored)
        });
        let out = out.ok_or_else(|| {
            ProviderError::new(format!(
                "{} ({id}) no longer exists in the simulated cloud",
                ctx.address
            ))
        })?;
        self.flush(generation).await?;
        Ok(out)
    }

    async fn delete(&self, ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
        simulate(prior, "delete", &ctx.address).await?;
        let id = prior
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let ((), generation) = self.mutate(|cloud| {
            cloud.resources.remove(&id);
        });
        self.flush(generation).await
    }

    async fn read(&self, requests: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
        let inner = self.inner.lock().expect("sim cloud");
        Ok(requests
            .iter()
            .map(|r| {
                let id = r.prior.get("id").and_then(Value::as_str)?;
                inner.cloud.resources.get(id).map(|o| o.attrs.clone())
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: Value) -> Attrs {
        v.as_object().unwrap().clone()
    }

    fn ctx(name: &str) -> OpContext {
        OpContext::new(Address::new(KIND, name), "t".into(), None)
    }

    #[tokio::test]
    async fn create_read_update_delete_persist_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloud.json");
        let sim = SimProvider::open(&path).unwrap();
        let created = sim
            .create(&ctx("a"), &attrs(json!({"size": 3})))
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap().to_string();
        let updated = sim
            .update(&ctx("a"), &created, &attrs(json!({"size": 4})))
            .await
            .unwrap();
        assert_eq!(updated["size"], 4);

        let reopened = SimProvider::open(&path).unwrap();
        let read = reopened
            .read(&[ReadRequest {
                address: Address::new(KIND, "a"),
                kind: KIND.into(),
                prior: created.clone(),
            }])
            .await
            .unwrap();
        assert_eq!(read[0].as_ref().unwrap()["size"], 4);
        assert_eq!(read[0].as_ref().unwrap()["id"], json!(id));

        reopened.delete(&ctx("a"), &updated).await.unwrap();
        let again = SimProvider::open(&path).unwrap();
        assert!(again.snapshot().resources.is_empty());
        let read = again
            .read(&[ReadRequest {
                address: Address::new(KIND, "a"),
                kind: KIND.into(),
                prior: created,
            }])
            .await
            .unwrap();
        assert!(read[0].is_none());
    }

    #[tokio::test]
    async fn injected_failures_fail_only_that_operation() {
        let dir = tempfile::tempdir().unwrap();
        let sim = SimProvider::open(&dir.path().join("c.json")).unwrap();
        let err = sim
            .create(&ctx("a"), &attrs(json!({"fail": "create"})))
            .await
            .unwrap_err();
        assert!(err.message.contains("injected failure"), "{err}");
        assert!(sim.snapshot().resources.is_empty());
        let made = sim
            .create(&ctx("b"), &attrs(json!({"fail": "delete"})))
            .await
            .unwrap();
        assert!(sim.delete(&ctx("b"), &made).await.is_err());
        assert_eq!(sim.snapshot().resources.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn delay_is_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let sim = SimProvider::open(&dir.path().join("c.json")).unwrap();
        let start = tokio::time::Instant::now();
        sim.create(&ctx("a"), &attrs(json!({"delay_ms": 250})))
            .await
            .unwrap();
        assert!(start.elapsed() >= Duration::from_millis(250));
    }

    #[test]
    fn schema_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let sim = SimProvider::open(&dir.path().join("c.json")).unwrap();
        let schema = sim.schema(KIND, &attrs(json!({"replace_on": ["zone"]})));
        assert!(schema.replace_on.contains("zone") && schema.computed.contains("id"));
        let problems = sim.validate(
            &Address::new(KIND, "a"),
            &attrs(json!({"delay_ms": "x", "fail": "boom", "id": 1})),
        );
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn corrupt_cloud_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, b"{nope").unwrap();
        assert!(SimProvider::open(&path).is_err());
    }
}
