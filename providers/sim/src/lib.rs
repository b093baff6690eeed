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
//! cloud: a snapshot (`PATH`) plus an append-only log of changes
//! (`PATH.log`, one JSON line per change, replayed on open and folded into
//! the snapshot once it outgrows it). An operation returns once its log line
//! is written, and concurrent operations share writes, so a killed run
//! leaves the cloud with everything it had created.

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

/// One change to the cloud, as a line of the log. Replaying a line twice
/// is harmless, so a crash between folding and truncating loses nothing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Change {
    Put { id: String, object: SimObject, next_id: u64 },
    Delete { id: String },
}

struct Inner {
    cloud: Cloud,
    /// Changes not yet in the log, and the generation of the last of them.
    pending: Vec<Change>,
    generation: u64,
}

/// What has been written: the generation up to which changes are in the
/// log, and the sizes that decide when to fold the log into the snapshot.
struct Written {
    generation: u64,
    log_bytes: u64,
    snapshot_bytes: u64,
}

pub struct SimProvider {
    path: PathBuf,
    inner: Mutex<Inner>,
    written: tokio::sync::Mutex<Written>,
}

/// The log is not folded before it holds this much.
const LOG_MIN_FOLD: u64 = 1 << 20;

fn log_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".log");
    PathBuf::from(s)
}

fn replay(cloud: &mut Cloud, change: Change) {
    match change {
        Change::Put { id, object, next_id } => {
            cloud.next_id = cloud.next_id.max(next_id);
            cloud.resources.insert(id, object);
        }
        Change::Delete { id } => {
            cloud.resources.remove(&id);
        }
    }
}

impl SimProvider {
    /// Open (or start) the simulated cloud kept in `path`.
    pub fn open(path: &Path) -> Result<SimProvider, ProviderError> {
        let read = |p: &Path| match std::fs::read(p) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(ProviderError::new(format!("cannot read simulated cloud {}: {e}", p.display()))),
        };
        let snapshot = read(path)?;
        let mut cloud: Cloud = if snapshot.is_empty() {
            Cloud::default()
        } else {
            serde_json::from_slice(&snapshot)
                .map_err(|e| ProviderError::new(format!("simulated cloud {} is corrupt: {e}", path.display())))?
        };
        let log = read(&log_path(path))?;
        // Only complete lines: a torn last line was never acknowledged.
        let mut complete = 0;
        for (i, line) in log.split_inclusive(|&b| b == b'\n').enumerate() {
            if !line.ends_with(b"\n") {
                break;
            }
            let change: Change = serde_json::from_slice(line).map_err(|e| {
                ProviderError::new(format!(
                    "simulated cloud log {} is corrupt at line {}: {e}",
                    log_path(path).display(),
                    i + 1
                ))
            })?;
            replay(&mut cloud, change);
            complete += line.len();
        }
        Ok(SimProvider {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner { cloud, pending: Vec::new(), generation: 0 }),
            written: tokio::sync::Mutex::new(Written {
                generation: 0,
                log_bytes: complete as u64,
                snapshot_bytes: snapshot.len() as u64,
            }),
        })
    }

    /// Change the cloud as something other than skyplan would (a person in
    /// the console): applied and written at once, for drift tests.
    pub fn rewrite(&self, f: impl FnOnce(&mut Cloud)) -> Result<(), ProviderError> {
        f(&mut self.inner.lock().expect("sim cloud").cloud);
        let mut written = self.written.try_lock().map_err(|_| ProviderError::new("the simulated cloud is busy"))?;
        self.fold(&mut written)
            .map_err(|e| ProviderError::new(format!("cannot write simulated cloud {}: {e}", self.path.display())))
    }

    /// A copy of the cloud's current contents.
    pub fn snapshot(&self) -> Cloud {
        self.inner.lock().expect("sim cloud").cloud.clone()
    }

    /// Change the cloud in memory; the returned generation is durable once
    /// `flush` of it returns.
    fn mutate<T>(&self, f: impl FnOnce(&mut Cloud) -> (T, Vec<Change>)) -> (T, u64) {
        let mut inner = self.inner.lock().expect("sim cloud");
        let (out, changes) = f(&mut inner.cloud);
        inner.pending.extend(changes);
        inner.generation += 1;
        (out, inner.generation)
    }

    /// Return once every change up to `generation` is in the log. Whoever
    /// flushes writes all pending changes, so concurrent operations share
    /// one write.
    async fn flush(&self, generation: u64) -> Result<(), ProviderError> {
        let mut written = self.written.lock().await;
        if written.generation >= generation {
            return Ok(());
        }
        let (changes, upto) = {
            let mut inner = self.inner.lock().expect("sim cloud");
            (std::mem::take(&mut inner.pending), inner.generation)
        };
        let mut lines = Vec::with_capacity(changes.len() * 256);
        for change in &changes {
            serde_json::to_writer(&mut lines, change).expect("changes serialize");
            lines.push(b'\n');
        }
        let io_error = |e: std::io::Error| {
            ProviderError::new(format!("cannot write simulated cloud {}: {e}", self.path.display()))
        };
        let mut log =
            std::fs::OpenOptions::new().create(true).append(true).open(log_path(&self.path)).map_err(io_error)?;
        std::io::Write::write_all(&mut log, &lines).map_err(io_error)?;
        written.log_bytes += lines.len() as u64;
        written.generation = upto;
        if written.log_bytes > written.snapshot_bytes.max(LOG_MIN_FOLD) {
            self.fold(&mut written).map_err(io_error)?;
        }
        Ok(())
    }

    /// Write the whole cloud as the snapshot and empty the log.
    fn fold(&self, written: &mut Written) -> std::io::Result<()> {
        let bytes = {
            let inner = self.inner.lock().expect("sim cloud");
            serde_json::to_vec(&inner.cloud).expect("cloud serializes")
        };
        // Per-process temp name: two runs on one cloud never share it.
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(format!(".tmp.{}", std::process::id()));
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, &self.path)?;
        // Replaying the log again would be harmless; emptying it keeps it short.
        std::fs::File::create(log_path(&self.path))?;
        written.snapshot_bytes = bytes.len() as u64;
        written.log_bytes = 0;
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
        return Err(ProviderError::new(format!("injected failure: {op} of {address} fails (fail = \"{op}\")")));
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
            .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        Schema { replace_on, computed: BTreeSet::from(["id".to_string()]), holds: BTreeSet::new(), exclusive: false }
    }

    fn validate(&self, _address: &Address, attrs: &Attrs) -> Vec<String> {
        let mut problems = Vec::new();
        if attrs.contains_key("id") {
            problems.push("id is computed by the simulated cloud and cannot be set".to_string());
        }
        if let Some(v) = attrs.get("delay_ms") {
            if v.as_u64().is_none() {
                problems.push(format!("delay_ms must be a whole number of milliseconds, not {v}"));
            }
        }
        if let Some(v) = attrs.get("replace_on") {
            if !v.as_array().is_some_and(|l| l.iter().all(Value::is_string)) {
                problems.push(format!("replace_on must be a list of attribute names, not {v}"));
            }
        }
        if let Some(v) = attrs.get("fail") {
            if !matches!(v.as_str(), Some("create" | "update" | "delete")) {
                problems.push(format!("fail must be \"create\", \"update\" or \"delete\", not {v}"));
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
            let object = SimObject { address: ctx.address.to_string(), attrs: stored.clone() };
            cloud.resources.insert(id.clone(), object.clone());
            (stored, vec![Change::Put { id, object, next_id: cloud.next_id }])
        });
        self.flush(generation).await?;
        Ok(out)
    }

    async fn update(&self, ctx: &OpContext, prior: &Attrs, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        simulate(attrs, "update", &ctx.address).await?;
        let id = prior.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        let (out, generation) = self.mutate(|cloud| {
            let next_id = cloud.next_id;
            let Some(object) = cloud.resources.get_mut(&id) else {
                return (None, vec![]);
            };
            let mut stored = attrs.clone();
            stored.insert("id".into(), Value::String(id.clone()));
            object.attrs = stored.clone();
            (Some(stored), vec![Change::Put { id: id.clone(), object: object.clone(), next_id }])
        });
        let out = out.ok_or_else(|| {
            ProviderError::new(format!("{} ({id}) no longer exists in the simulated cloud", ctx.address))
        })?;
        self.flush(generation).await?;
        Ok(out)
    }

    async fn delete(&self, ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
        simulate(prior, "delete", &ctx.address).await?;
        let id = prior.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        let ((), generation) = self.mutate(|cloud| {
            cloud.resources.remove(&id);
            ((), vec![Change::Delete { id: id.clone() }])
        });
        self.flush(generation).await
    }

    async fn find(&self, _kind: &str, address: &Address, _inputs: &Attrs) -> Result<Option<Attrs>, ProviderError> {
        let wanted = address.to_string();
        let inner = self.inner.lock().expect("sim cloud");
        Ok(inner.cloud.resources.values().find(|o| o.address == wanted).map(|o| o.attrs.clone()))
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
        let created = sim.create(&ctx("a"), &attrs(json!({"size": 3}))).await.unwrap();
        let id = created["id"].as_str().unwrap().to_string();
        let updated = sim.update(&ctx("a"), &created, &attrs(json!({"size": 4}))).await.unwrap();
        assert_eq!(updated["size"], 4);

        let reopened = SimProvider::open(&path).unwrap();
        let read = reopened
            .read(&[ReadRequest { address: Address::new(KIND, "a"), kind: KIND.into(), prior: created.clone() }])
            .await
            .unwrap();
        assert_eq!(read[0].as_ref().unwrap()["size"], 4);
        assert_eq!(read[0].as_ref().unwrap()["id"], json!(id));

        reopened.delete(&ctx("a"), &updated).await.unwrap();
        let again = SimProvider::open(&path).unwrap();
        assert!(again.snapshot().resources.is_empty());
        let read = again
            .read(&[ReadRequest { address: Address::new(KIND, "a"), kind: KIND.into(), prior: created }])
            .await
            .unwrap();
        assert!(read[0].is_none());
    }

    #[tokio::test]
    async fn injected_failures_fail_only_that_operation() {
        let dir = tempfile::tempdir().unwrap();
        let sim = SimProvider::open(&dir.path().join("c.json")).unwrap();
        let err = sim.create(&ctx("a"), &attrs(json!({"fail": "create"}))).await.unwrap_err();
        assert!(err.message.contains("injected failure"), "{err}");
        assert!(sim.snapshot().resources.is_empty());
        let made = sim.create(&ctx("b"), &attrs(json!({"fail": "delete"}))).await.unwrap();
        assert!(sim.delete(&ctx("b"), &made).await.is_err());
        assert_eq!(sim.snapshot().resources.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn delay_is_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let sim = SimProvider::open(&dir.path().join("c.json")).unwrap();
        let start = tokio::time::Instant::now();
        sim.create(&ctx("a"), &attrs(json!({"delay_ms": 250}))).await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(250));
    }

    #[test]
    fn schema_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let sim = SimProvider::open(&dir.path().join("c.json")).unwrap();
        let schema = sim.schema(KIND, &attrs(json!({"replace_on": ["zone"]})));
        assert!(schema.replace_on.contains("zone") && schema.computed.contains("id"));
        let problems =
            sim.validate(&Address::new(KIND, "a"), &attrs(json!({"delay_ms": "x", "fail": "boom", "id": 1})));
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[tokio::test]
    async fn the_log_survives_a_crash_and_a_torn_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        let sim = SimProvider::open(&path).unwrap();
        let a = sim.create(&ctx("a"), &attrs(json!({"n": 1}))).await.unwrap();
        sim.create(&ctx("b"), &attrs(json!({"n": 2}))).await.unwrap();
        sim.delete(&ctx("a"), &a).await.unwrap();
        drop(sim); // no fold: as if the process were killed
        let mut log = std::fs::OpenOptions::new().append(true).open(log_path(&path)).unwrap();
        std::io::Write::write_all(&mut log, br#"{"put":{"id":"sim-9","obj"#).unwrap();
        let reopened = SimProvider::open(&path).unwrap();
        let cloud = reopened.snapshot();
        assert_eq!(cloud.resources.len(), 1);
        assert_eq!(cloud.next_id, 2);
        assert_eq!(cloud.resources["sim-2"].address, "sim_resource.b");
    }

    #[tokio::test]
    async fn the_log_is_folded_into_the_snapshot_as_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        let sim = SimProvider::open(&path).unwrap();
        let big = "x".repeat(8192);
        for i in 0..300 {
            sim.create(&ctx(&format!("r{i}")), &attrs(json!({"blob": big}))).await.unwrap();
        }
        let log = std::fs::metadata(log_path(&path)).unwrap().len();
        assert!(log <= LOG_MIN_FOLD + 16 * 1024, "log of {log} bytes was never folded");
        assert!(std::fs::metadata(&path).unwrap().len() > 0);
        assert_eq!(SimProvider::open(&path).unwrap().snapshot().resources.len(), 300);
    }

    #[test]
    fn corrupt_cloud_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, b"{nope").unwrap();
        assert!(SimProvider::open(&path).is_err());
    }
}
