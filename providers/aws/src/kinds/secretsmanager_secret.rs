//! `aws_secretsmanager_secret`: one of a cluster's bootstrap secrets
//! (docs/bootstrap.md, "Where each secret lives").
//!
//! The value is generated here, at create, and never leaves this file:
//! `content` says what to generate (`cluster-pki`: new CAs and
//! service-account key as the tar archive nodes unpack, `SecretBinary`;
//! `join`: a new bootstrap token and the CA hash of the PKI secret
//! `pki_arn` names, read from that secret; `init-lock`: a marker). The
//! attributes keep only what is public: `id` (= name), `arn`, and
//! `ca_cert_hash` for `cluster-pki` and `join`. No value is returned,
//! stored, printed or logged; every read drops it at once.
//!
//! The seed's policies allow CreateSecret, TagResource, GetSecretValue and
//! DeleteSecret on `aws.cluster.x-k8s.io/*` and nothing else:
//! - reads, the lost-create lookup and the orphan lookup get each secret by
//!   its name with GetSecretValue (no DescribeSecret, no ListSecrets). The
//!   answer carries no tags, so a read keeps the recorded `tags`, and the
//!   orphan lookup trusts the name: the blueprint's names are fixed per
//!   cluster (`aws.cluster.x-k8s.io/<cluster>/<kind>`), so a secret at one
//!   of them is that cluster's. A raw secret under another name is not
//!   found as a leftover.
//! - no PutSecretValue: a value never changes; `name`, `content` and
//!   `pki_arn` force a new secret. Tags are added or changed in place with
//!   TagResource; a tag taken out of the spec stays (no UntagResource),
//!   said once in the run's notes.
//! - a name already taken at create (a leftover of an earlier cluster of
//!   the same name, or a secret still being deleted) is force-deleted and
//!   the create tried again, as cluster-api-provider-aws does.
//!
//! The init lock gone is its normal state once the first control plane has
//! taken it: a read reports it as it was recorded (no drift), so no later
//! plan makes it again and a replaced `control_plane[0]` finds it gone and
//! joins. `destroy` deletes it if it is still there.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::Tag;
use serde_json::{json, Value};
use skyplan_aws_blueprint::bootstrap::secrets::{join_secret, parse_join_secret};
use skyplan_aws_blueprint::bootstrap::{secret_name, BootstrapToken, ClusterPki, SecretKind};
use skyplan_engine::{Attrs, OpContext, ProviderError, ReadRequest};

use crate::attrs::{self, Field, KindSpec, Ty};
use crate::clients::Clients;
use crate::error::ApiError;
use crate::retry::Retry;
use crate::secret_value::{cluster_pki, get_value, gone, Held};
use crate::tags::{self, Tags, ADDRESS_TAG};

use super::{AwsKind, Hit};

pub(crate) const SPEC: KindSpec = KindSpec {
    kind: "aws_secretsmanager_secret",
    fields: &[
        Field::new("name", Ty::Str).required().replace().at_most(512, "Secrets Manager CreateSecret: Name, at most 512 characters"),
        Field::new("content", Ty::Str).required().replace(),
        Field::new("pki_arn", Ty::Str).replace(),
        Field::new("tags", Ty::StrMap).default("{}").at_most(50, "Secrets Manager TagResource: at most 50 tags"),
    ],
    computed: &["id", "arn", "ca_cert_hash"],
    exclusive: true,
};

/// What a secret holds, from its `content` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    Pki,
    Join,
    InitLock,
}

impl Content {
    const ALL: [(Content, &'static str); 3] =
        [(Content::Pki, "cluster-pki"), (Content::Join, "join"), (Content::InitLock, "init-lock")];

    fn parse(text: &str) -> Option<Content> {
        Content::ALL.iter().find(|(_, name)| *name == text).map(|(c, _)| *c)
    }

    fn name(self) -> &'static str {
        Content::ALL.iter().find(|(c, _)| *c == self).map(|(_, n)| *n).unwrap_or_default()
    }

    /// The blueprint's secret of this content.
    fn kind(self) -> SecretKind {
        match self {
            Content::Pki => SecretKind::Pki,
            Content::Join => SecretKind::Join,
            Content::InitLock => SecretKind::InitLock,
        }
    }

    fn of(attrs: &Attrs) -> Result<Content, ProviderError> {
        let text = attrs::req_str(attrs, "content")?;
        Content::parse(text).ok_or_else(|| ProviderError::new(content_problem(text)))
    }
}

fn content_problem(text: &str) -> String {
    let names: Vec<&str> = Content::ALL.iter().map(|(_, n)| *n).collect();
    format!("`content` {text:?} is not one of {}", names.join(", "))
}

/// The init lock's value: only its existence counts.
const INIT_LOCK_MARKER: &str =
    "skyplan: this cluster is not initialized yet; its first control plane deletes this secret before kubeadm init\n";

/// How often a create whose name is taken is tried again, and the wait
/// between tries (AWS may take a while to let go of a deleted name).
const CREATE_TRIES: u32 = 30;
const CREATE_WAIT: Duration = Duration::from_secs(10);

/// The public CA hash a value of `content` gives, if any.
fn ca_cert_hash(content: Content, value: &Held) -> Result<Option<String>, String> {
    match (content, value) {
        (Content::Pki, Held::Binary(bytes)) => ClusterPki::from_archive(bytes)
            .map(|pki| Some(pki.ca_cert_hash()))
            .map_err(|e| format!("it is not the archive of CAs skyplan writes ({e})")),
        (Content::Pki, Held::Text(_)) => Err("it holds text, not the archive of CAs skyplan writes".into()),
        (Content::Join, Held::Text(text)) => parse_join_secret(text)
            .map(|(_, hash)| Some(hash))
            .ok_or_else(|| "it holds no token and CA hash".to_string()),
        (Content::Join, Held::Binary(_)) => Err("it holds bytes, not the token and CA hash".into()),
        (Content::InitLock, _) => Ok(None),
    }
}

/// CreateSecret with `value`; a name already taken is force-deleted and
/// the create tried again. The new secret's ARN.
async fn create_secret(
    c: &Clients,
    ctx: &OpContext,
    name: &str,
    value: &Held,
    tags: &Tags,
) -> Result<String, ProviderError> {
    let tag_list: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
    for attempt in 1..=CREATE_TRIES {
        let answer = c
            .call("CreateSecret", Retry::Standard, || {
                let request = c.secrets.create_secret().name(name).set_tags(Some(tag_list.clone()));
                match value {
                    Held::Binary(bytes) => request.secret_binary(Blob::new(bytes.clone())),
                    Held::Text(text) => request.secret_string(text.clone()),
                }
                .send()
            })
            .await;
        match answer {
            Ok(out) => {
                return out.arn().map(str::to_string).ok_or_else(|| {
                    ProviderError::new(format!("CreateSecret made {name} but did not say its ARN"))
                })
            }
            Err(e) if e.code() == "ResourceExistsException" => {
                ctx.report(format!("a secret named {name} is left over: deleting it for good and creating it again"));
                delete_secret(c, name).await?;
            }
            // The name is still being let go of after a delete.
            Err(e) if e.code() == "InvalidRequestException" && attempt < CREATE_TRIES => {
                ctx.report(format!("secret {name} is still being deleted: waiting to create it again"));
                tokio::time::sleep(CREATE_WAIT).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ProviderError::new(format!(
        "could not create secret {name}: its name stayed taken after {CREATE_TRIES} tries over {} seconds",
        CREATE_TRIES as u64 * CREATE_WAIT.as_secs()
    )))
}

/// DeleteSecret without recovery; one already gone is fine.
async fn delete_secret(c: &Clients, id: &str) -> Result<(), ProviderError> {
    match c
        .call("DeleteSecret", Retry::Standard, || {
            c.secrets.delete_secret().secret_id(id).force_delete_without_recovery(true).send()
        })
        .await
    {
        Err(e) if !gone(&e) => Err(e.into()),
        _ => Ok(()),
    }
}

/// The cluster named by the ownership tags (`kubernetes.io/cluster/<name>`).
fn cluster_of(owner: &Tags) -> Option<&str> {
    owner.keys().find_map(|k| k.strip_prefix("kubernetes.io/cluster/"))
}

/// `aws_secretsmanager_secret` in the registry (`kinds/mod.rs`).
pub(crate) struct Kind;

#[async_trait]
impl AwsKind for Kind {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    fn validate(&self, attrs: &Attrs) -> Vec<String> {
        let mut errors = Vec::new();
        let Some(Value::String(content)) = attrs.get("content") else { return errors };
        if content.contains("${") {
            return errors;
        }
        match Content::parse(content) {
            None => errors.push(content_problem(content)),
            Some(Content::Join) if attrs.get("pki_arn").is_none_or(Value::is_null) => {
                errors.push("`pki_arn` is required when `content` is \"join\": the CA hash comes from that secret".into())
            }
            Some(Content::Pki | Content::InitLock) if attrs.get("pki_arn").is_some_and(|v| !v.is_null()) => {
                errors.push(format!("`pki_arn` is only for `content = \"join\"`, not {content:?}"))
            }
            _ => {}
        }
        errors
    }

    async fn create(&self, c: &Clients, ctx: &OpContext, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        let name = attrs::req_str(attrs, "name")?;
        let content = Content::of(attrs)?;
        let tags = tags::for_create(attrs, &ctx.address)?;
        let now = SystemTime::now();
        let (value, hash) = match content {
            Content::Pki => {
                let pki = ClusterPki::generate(now)
                    .map_err(|e| ProviderError::new(format!("could not generate the cluster CAs: {e}")))?;
                (Held::Binary(pki.to_archive(now)), Some(pki.ca_cert_hash()))
            }
            Content::Join => {
                let pki_arn = attrs::req_str(attrs, "pki_arn")?;
                // Made just before by this apply: not visible yet is not gone.
                let hash = cluster_pki(c, pki_arn, Retry::AfterCreate).await?.ca_cert_hash();
                (Held::Text(join_secret(&BootstrapToken::generate(), &hash)), Some(hash))
            }
            Content::InitLock => (Held::Text(INIT_LOCK_MARKER.to_string()), None),
        };
        let arn = create_secret(c, ctx, name, &value, &tags).await?;
        drop(value);
        let mut result = attrs.clone();
        result.insert("id".into(), json!(name));
        result.insert("arn".into(), json!(arn));
        if let Some(hash) = hash {
            result.insert("ca_cert_hash".into(), json!(hash));
        }
        Ok(result)
    }

    async fn read(&self, c: &Clients, reqs: &[ReadRequest]) -> Result<Vec<Option<Attrs>>, ProviderError> {
        // No batched read in the seed: one GetSecretValue per secret (a
        // cluster has three).
        let mut out = Vec::with_capacity(reqs.len());
        for req in reqs {
            let id = attrs::id(&req.prior)?;
            let content = match attrs::known_str(&req.prior, "content") {
                Some(text) => Content::parse(text),
                // An orphan: what the name says.
                None => Content::ALL.iter().map(|(c, _)| *c).find(|c| id.ends_with(&format!("/{}", c.kind().key()))),
            };
            let Some((arn, value)) = get_value(c, id, Retry::Standard).await? else {
                // The init lock taken by the first control plane: as recorded.
                let taken = content == Some(Content::InitLock) && req.prior.get("arn").is_some_and(Value::is_string);
                out.push(taken.then(|| req.prior.clone()));
                continue;
            };
            // A value skyplan did not write (a leftover under the name)
            // has no hash: reported without one, not an error.
            let hash = content.and_then(|content| ca_cert_hash(content, &value).ok().flatten());
            drop(value);
            let mut live = Attrs::new();
            live.insert("id".into(), json!(id));
            live.insert("name".into(), json!(id));
            live.insert("content".into(), content.map_or(Value::Null, |c| json!(c.name())));
            // A lost create's lookup has no ARN yet: the answer's.
            live.insert("arn".into(), arn.map_or_else(|| req.prior.get("arn").cloned().unwrap_or(Value::Null), |a| json!(a)));
            for kept in ["pki_arn", "tags"] {
                if let Some(v) = req.prior.get(kept).filter(|v| !v.is_null()) {
                    live.insert(kept.into(), v.clone());
                }
            }
            if let Some(hash) = hash {
                live.insert("ca_cert_hash".into(), json!(hash));
            }
            out.push(Some(SPEC.shape(&req.prior, live)));
        }
        Ok(out)
    }

    async fn update(&self, c: &Clients, _ctx: &OpContext, prior: &Attrs, attrs: &Attrs) -> Result<Attrs, ProviderError> {
        let id = attrs::id(prior)?;
        let diff = tags::diff_attrs(prior, attrs)?;
        if !diff.set.is_empty() {
            let list: Vec<Tag> = diff.set.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
            c.call("TagResource", Retry::AfterCreate, || {
                c.secrets.tag_resource().secret_id(id).set_tags(Some(list.clone())).send()
            })
            .await?;
        }
        if !diff.remove.is_empty() {
            c.skip_once(format!(
                "tags taken out of the spec stay on the cluster's secrets ({}): the seed's policies have no secretsmanager:UntagResource",
                diff.remove.join(", ")
            ));
        }
        let mut result = attrs.clone();
        for computed in SPEC.computed {
            if let Some(v) = prior.get(*computed) {
                result.insert(computed.to_string(), v.clone());
            }
        }
        Ok(result)
    }

    async fn delete(&self, c: &Clients, _ctx: &OpContext, prior: &Attrs) -> Result<(), ProviderError> {
        delete_secret(c, attrs::id(prior)?).await
    }

    async fn find_id(&self, c: &Clients, _address: &str, inputs: &Attrs) -> Result<Option<String>, ProviderError> {
        // The answer carries no tags: the name, fixed per cluster, is the proof.
        let name = attrs::req_str(inputs, "name")?;
        Ok(get_value(c, name, Retry::Standard).await?.map(|_| name.to_string()))
    }

    async fn list_owned(&self, c: &Clients, owner: &Tags) -> Result<Vec<Hit>, ApiError> {
        let Some(cluster) = cluster_of(owner) else { return Ok(Vec::new()) };
        let mut hits = Vec::new();
        for kind in SecretKind::ALL {
            let name = secret_name(cluster, kind);
            if get_value(c, &name, Retry::Standard).await?.is_some() {
                // The seed reads no tags: the name says whose it is.
                let mut tags = owner.clone();
                tags.insert(ADDRESS_TAG.into(), skyplan_aws_blueprint::secrets::address(kind).to_string());
                hits.push(Hit { id: name, tags });
            }
        }
        Ok(hits)
    }
}

#[cfg(test)]
mod request_tests {
    use super::*;
    use crate::testing::{recording_ctx, FakeAws, Sent};
    use skyplan_engine::Address;

    fn json_ok(body: serde_json::Value) -> (u16, String) {
        (200, body.to_string())
    }

    fn json_error(code: &str, message: &str) -> (u16, String) {
        (400, json!({"__type": code, "message": message}).to_string())
    }

    fn attrs(v: serde_json::Value) -> Attrs {
        serde_json::from_value(v).unwrap()
    }

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:aws.cluster.x-k8s.io/demo/pki-AbCdEf";

    #[tokio::test]
    async fn a_pki_secret_is_created_with_its_tags_and_only_its_hash_is_kept() {
        let fake = FakeAws::new(|s: &Sent| match s.action.as_str() {
            "CreateSecret" => json_ok(json!({"ARN": ARN, "Name": "aws.cluster.x-k8s.io/demo/pki"})),
            other => panic!("unexpected {other}"),
        });
        let c = fake.clients().await;
        let (ctx, _) = recording_ctx(Address::new("aws_secretsmanager_secret", "pki"), "t");
        let inputs = attrs(json!({"name": "aws.cluster.x-k8s.io/demo/pki", "content": "cluster-pki",
            "tags": {"kubernetes.io/cluster/demo": "owned"}}));
        let out = Kind.create(&c, &ctx, &inputs).await.unwrap();
        assert_eq!(out["arn"], ARN);
        assert_eq!(out["id"], "aws.cluster.x-k8s.io/demo/pki");
        let hash = out["ca_cert_hash"].as_str().unwrap();
        assert!(hash.starts_with("sha256:") && hash.len() == 71, "{hash}");
        let text = serde_json::to_string(&out).unwrap();
        assert!(!text.contains("PRIVATE KEY") && !text.contains("SecretBinary"), "{text}");
        let sent = fake.sent();
        assert_eq!(sent.len(), 1);
        let body = &sent[0].params;
        assert!(body.contains_key("SecretBinary") && !body.contains_key("SecretString"), "{body:?}");
        assert!(body["Tags"].contains("skyplan:address") && body["Tags"].contains("aws_secretsmanager_secret.pki"));
        assert!(body["Tags"].contains("kubernetes.io/cluster/demo"));
    }

    #[tokio::test]
    async fn a_leftover_name_is_force_deleted_and_the_create_tried_again() {
        let creates = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let seen = creates.clone();
        let fake = FakeAws::new(move |s: &Sent| match s.action.as_str() {
            "CreateSecret" if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 => {
                json_error("ResourceExistsException", "the secret already exists")
            }
            "CreateSecret" => json_ok(json!({"ARN": ARN})),
            "DeleteSecret" => json_ok(json!({"ARN": ARN})),
            other => panic!("unexpected {other}"),
        });
        let c = fake.clients().await;
        let (ctx, reports) = recording_ctx(Address::new("aws_secretsmanager_secret", "init_lock"), "t");
        let inputs = attrs(json!({"name": "aws.cluster.x-k8s.io/demo/init-lock", "content": "init-lock"}));
        let out = Kind.create(&c, &ctx, &inputs).await.unwrap();
        assert!(!out.contains_key("ca_cert_hash"));
        assert_eq!(fake.actions(), ["CreateSecret", "DeleteSecret", "CreateSecret"]);
        assert_eq!(fake.sent()[1].param("ForceDeleteWithoutRecovery"), Some("true"));
        assert!(reports.lock().unwrap()[0].contains("left over"), "{reports:?}");
    }

    #[tokio::test]
    async fn a_taken_init_lock_is_no_drift_and_other_gone_secrets_are_gone() {
        let fake = FakeAws::new(|_: &Sent| json_error("ResourceNotFoundException", "Secrets Manager can't find it"));
        let c = fake.clients().await;
        let request = |name: &str, content: &str| ReadRequest {
            address: Address::new("aws_secretsmanager_secret", "x"),
            kind: "aws_secretsmanager_secret".into(),
            prior: attrs(json!({"id": name, "name": name, "content": content, "arn": ARN})),
        };
        let lock = request("aws.cluster.x-k8s.io/demo/init-lock", "init-lock");
        let join = request("aws.cluster.x-k8s.io/demo/join", "join");
        let out = Kind.read(&c, &[lock.clone(), join]).await.unwrap();
        assert_eq!(out, [Some(lock.prior), None]);
        // Deleting what is gone succeeds.
        Kind.delete(&c, &recording_ctx(Address::new("aws_secretsmanager_secret", "x"), "t").0, &request("n", "join").prior)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn leftovers_and_lost_creates_are_found_by_the_clusters_names() {
        // Only the pki secret exists.
        let fake = FakeAws::new(|s: &Sent| match s.param("SecretId") {
            Some("aws.cluster.x-k8s.io/demo/pki") => json_ok(json!({"ARN": ARN, "SecretString": "x"})),
            _ => json_error("ResourceNotFoundException", "Secrets Manager can't find the specified secret."),
        });
        let c = fake.clients().await;
        let owner: Tags = [
            ("kubernetes.io/cluster/demo".to_string(), "owned".to_string()),
            ("sigs.k8s.io/cluster-api-provider-aws/cluster/demo".to_string(), "owned".to_string()),
        ]
        .into();
        let hits = Kind.list_owned(&c, &owner).await.unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].id, "aws.cluster.x-k8s.io/demo/pki");
        assert_eq!(hits[0].tags[ADDRESS_TAG], "aws_secretsmanager_secret.pki");
        assert_eq!(hits[0].tags["kubernetes.io/cluster/demo"], "owned");
        let asked: Vec<String> = fake.sent().iter().filter_map(|s| s.param("SecretId").map(str::to_string)).collect();
        assert_eq!(
            asked,
            ["aws.cluster.x-k8s.io/demo/pki", "aws.cluster.x-k8s.io/demo/join", "aws.cluster.x-k8s.io/demo/init-lock"]
        );
        let inputs = |name: &str| attrs(json!({"name": name, "content": "join"}));
        let pki = inputs("aws.cluster.x-k8s.io/demo/pki");
        let found = Kind.find_id(&c, "aws_secretsmanager_secret.pki", &pki).await.unwrap();
        assert_eq!(found.as_deref(), Some("aws.cluster.x-k8s.io/demo/pki"));
        let join = inputs("aws.cluster.x-k8s.io/demo/join");
        assert_eq!(Kind.find_id(&c, "aws_secretsmanager_secret.join", &join).await.unwrap(), None);
        // Without the cluster's tags, nothing is asked.
        assert!(Kind.list_owned(&c, &Tags::new()).await.unwrap().is_empty());
    }

    #[test]
    fn content_and_pki_arn_are_checked() {
        let errors = |v: serde_json::Value| Kind.validate(&attrs(v));
        assert!(errors(json!({"name": "n", "content": "join", "pki_arn": "${aws_secretsmanager_secret.pki.arn}"})).is_empty());
        assert!(errors(json!({"name": "n", "content": "join"}))[0].contains("`pki_arn` is required"));
        assert!(errors(json!({"name": "n", "content": "pki"}))[0].contains("not one of cluster-pki, join, init-lock"));
        assert!(errors(json!({"name": "n", "content": "init-lock", "pki_arn": "x"}))[0].contains("only for"));
    }
}
