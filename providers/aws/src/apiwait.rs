//! The wait on the API server (issue #12, docs/bootstrap.md): a control-plane
//! instance's create (its `api_wait` attribute) returns only once the node
//! is a control-plane member of the cluster, so the next control plane
//! joins after it (parallel etcd joins break) and the worker pools start
//! after the first one initialized the cluster.
//!
//! skyplan asks the API server through the endpoint (the API load
//! balancer's DNS name and port) with its own admin credentials: it reads
//! the cluster's PKI secret (GetSecretValue), signs a fresh admin client
//! certificate with the cluster CA (`CN=kubernetes-admin,
//! O=system:masters`, which works before kubeadm made any RBAC binding)
//! and lists the control-plane nodes (`kubeapi.rs`) until one has the
//! instance's private address. A node still starting (connection refused,
//! no healthy node behind the load balancer, a 5xx) is waited for; a server
//! the cluster CA did not sign, or one that refuses the certificate, fails
//! the create at once.
//!
//! When the endpoint's name does not resolve (within a few seconds), as on
//! the emulator whose load balancers have names but no addresses, the wait
//! is skipped with one note for the run.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use skyplan_aws_blueprint::bootstrap::pki;
use skyplan_engine::{Attrs, OpContext, ProviderError};

use crate::attrs::{Field, Ty};
use crate::clients::Clients;
use crate::kubeapi::{self, AdminClient, Failure};
use crate::retry::Retry;
use crate::wait::{self, Poll};

/// `api_wait = { host, port, pki_secret }` on a control-plane instance.
pub(crate) const FIELDS: &[Field] = &[
    Field::new("host", Ty::Str).required(),
    Field::new("port", Ty::Int).required(),
    Field::new("pki_secret", Ty::Str).required(),
];

/// How long a name may take to resolve before the wait is skipped.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one request to the API server may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The note of a skipped wait (said once per run).
pub(crate) fn skipped_note(host: &str) -> String {
    format!(
        "the wait on the API server was skipped: the endpoint {host} does not resolve (as on an emulator); \
         control planes and worker pools were started in order without waiting for each node to join"
    )
}

/// What to wait on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiWait {
    pub host: String,
    pub port: u16,
    /// The Secrets Manager secret holding the cluster's PKI archive.
    pub pki_secret: String,
}

impl ApiWait {
    pub fn from_attrs(attrs: &Attrs) -> Result<Option<ApiWait>, ProviderError> {
        let Some(table) = attrs.get("api_wait").filter(|v| !v.is_null()) else { return Ok(None) };
        let text = |name: &str| -> Result<String, ProviderError> {
            table[name]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| ProviderError::new(format!("api_wait.{name} must be a string")))
        };
        let port = table["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| ProviderError::new("api_wait.port must be a port number"))?;
        Ok(Some(ApiWait { host: text("host")?, port, pki_secret: text("pki_secret")? }))
    }
}

/// The addresses `host` resolves to within `timeout`; None when it does
/// not resolve.
pub(crate) async fn resolve(host: &str, port: u16, timeout: Duration) -> Option<Vec<SocketAddr>> {
    let lookup = tokio::net::lookup_host((host, port));
    match tokio::time::timeout(timeout, lookup).await {
        Ok(Ok(found)) => Some(found.collect::<Vec<_>>()).filter(|a| !a.is_empty()),
        _ => None,
    }
}

/// Hosts found not to resolve in this run: asked once, not per instance.
fn unresolved() -> &'static Mutex<BTreeSet<String>> {
    static UNRESOLVED: OnceLock<Mutex<BTreeSet<String>>> = OnceLock::new();
    UNRESOLVED.get_or_init(Mutex::default)
}

/// Wait until the node with `private_ip` is a control-plane member, or
/// skip (with the run's note) when the endpoint does not resolve.
pub(crate) async fn until_member(
    c: &Clients,
    ctx: &OpContext,
    api: &ApiWait,
    private_ip: &str,
) -> Result<(), ProviderError> {
    let known_unresolved = unresolved().lock().expect("unresolved hosts").contains(&api.host);
    if known_unresolved || resolve(&api.host, api.port, RESOLVE_TIMEOUT).await.is_none() {
        unresolved().lock().expect("unresolved hosts").insert(api.host.clone());
        c.skip_once(skipped_note(&api.host));
        return Ok(());
    }
    let client = admin_client(c, &api.pki_secret).await?;
    ctx.report(format!("waiting for {private_ip} to join the control plane at https://{}:{}", api.host, api.port));
    wait_member(ctx, &client, api, private_ip, c.timeouts.api_server).await
}

/// The polling of [`until_member`], given the client.
pub(crate) async fn wait_member(
    ctx: &OpContext,
    client: &AdminClient,
    api: &ApiWait,
    private_ip: &str,
    patience: wait::Patience,
) -> Result<(), ProviderError> {
    let what = format!("{private_ip} to be a control-plane node of the cluster");
    wait::until(ctx, &what, patience, || async {
        // Each time afresh: the load balancer's addresses change.
        let resolved = resolve(&api.host, api.port, RESOLVE_TIMEOUT).await.unwrap_or_default();
        // IPv4 first: a classic load balancer answers there.
        let Some(address) = resolved.iter().find(|a| a.is_ipv4()).or(resolved.first()).copied() else {
            return Ok(Poll::Pending(format!("{} does not resolve", api.host)));
        };
        Ok(match client.get(address, &api.host, kubeapi::CONTROL_PLANE_NODES, REQUEST_TIMEOUT).await {
            Ok((200, body)) => match kubeapi::member(&body, private_ip) {
                Ok((true, _)) => Poll::Ready(()),
                Ok((false, n)) => Poll::Pending(format!("{n} control-plane node(s), {private_ip} not among them yet")),
                Err(e) => Poll::Pending(e),
            },
            Ok((status @ (401 | 403), _)) => Poll::Failed(format!(
                "the API server refused skyplan's admin certificate (HTTP {status}); the cluster's CA is not the \
                 one in its PKI secret"
            )),
            Ok((status, _)) => Poll::Pending(format!("the API server answered HTTP {status}")),
            Err(Failure::NotYet(why)) => Poll::Pending(why),
            Err(Failure::Refused(why)) => Poll::Failed(why),
        })
    })
    .await
}

/// An admin client signed by the cluster CA of the PKI secret.
async fn admin_client(c: &Clients, secret: &str) -> Result<AdminClient, ProviderError> {
    let pki = crate::secret_value::cluster_pki(c, secret, Retry::AfterCreate).await.map_err(|e| {
        ProviderError::new(format!("could not read the cluster's PKI secret {secret} to wait on the API server: {e}"))
    })?;
    let (cert, key) =
        pki::admin_certificate(&pki.cluster_ca, SystemTime::now()).map_err(|e| ProviderError::new(e.to_string()))?;
    AdminClient::new(pki.cluster_ca.cert_pem(), &cert, &key).map_err(ProviderError::new)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use skyplan_aws_blueprint::bootstrap::ClusterPki;
    use skyplan_engine::Address;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::retry::Backoff;

    fn ctx() -> OpContext {
        OpContext::new(Address::keyed("aws_instance", "control_plane", "0"), "tok".into(), None)
    }

    fn quick() -> wait::Patience {
        wait::Patience {
            timeout: Duration::from_secs(20),
            backoff: Backoff { base: Duration::from_millis(10), cap: Duration::from_millis(50) },
        }
    }

    fn node_list(ips: &[&str]) -> String {
        let items: Vec<serde_json::Value> = ips
            .iter()
            .map(|ip| serde_json::json!({"status": {"addresses": [{"type": "InternalIP", "address": ip}]}}))
            .collect();
        serde_json::json!({"kind": "NodeList", "items": items}).to_string()
    }

    /// A stand-in API server on 127.0.0.1 showing a certificate `ca` signed
    /// for localhost and requiring a client certificate `client_ca` signed:
    /// the n-th request (from 0) is answered `answers(n)`. The requests
    /// it answered (each one after a handshake with a valid client
    /// certificate) and its port.
    async fn api_server(
        ca: &ClusterPki,
        client_ca: &ClusterPki,
        answers: impl Fn(usize) -> (u16, String) + Send + Sync + 'static,
    ) -> (Arc<AtomicUsize>, u16) {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let (cert, key) = pki::serving_certificate(&ca.cluster_ca, &["localhost"], SystemTime::now()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(client_ca.cluster_ca.cert_pem().as_bytes()).unwrap()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = Arc::new(AtomicUsize::new(0));
        let count = served.clone();
        let answers = Arc::new(answers);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, count, answers) = (acceptor.clone(), count.clone(), answers.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&request);
                    assert!(head.starts_with(&format!("GET {} HTTP/1.1\r\n", kubeapi::CONTROL_PLANE_NODES)), "{head}");
                    let (status, body) = answers(count.fetch_add(1, Ordering::SeqCst));
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (served, port)
    }

    fn admin(pki: &ClusterPki) -> AdminClient {
        let (cert, key) = pki::admin_certificate(&pki.cluster_ca, SystemTime::now()).unwrap();
        AdminClient::new(pki.cluster_ca.cert_pem(), &cert, &key).unwrap()
    }

    #[tokio::test]
    async fn waits_through_the_endpoint_until_the_node_is_a_control_plane_member() {
        let pki = ClusterPki::generate(SystemTime::now()).unwrap();
        // Not yet (a load balancer with no healthy node: 503), then another
        // control plane only, then this one too.
        let (served, port) = api_server(&pki, &pki, |n| match n {
            0 => (503, "{}".into()),
            1 => (200, node_list(&["10.0.1.5"])),
            _ => (200, node_list(&["10.0.1.5", "10.0.2.9"])),
        })
        .await;
        let api = ApiWait { host: "localhost".into(), port, pki_secret: "aws.cluster.x-k8s.io/demo/pki".into() };
        wait_member(&ctx(), &admin(&pki), &api, "10.0.2.9", quick()).await.unwrap();
        assert_eq!(served.load(Ordering::SeqCst), 3, "asked until the node was listed");
    }

    #[tokio::test]
    async fn a_refused_certificate_or_another_servers_fails_at_once() {
        let pki = ClusterPki::generate(SystemTime::now()).unwrap();
        let (_, port) = api_server(&pki, &pki, |_| (403, "{\"kind\": \"Status\"}".into())).await;
        let api = ApiWait { host: "localhost".into(), port, pki_secret: "s".into() };
        let e = wait_member(&ctx(), &admin(&pki), &api, "10.0.2.9", quick()).await.unwrap_err();
        assert!(e.message.contains("refused skyplan's admin certificate (HTTP 403)"), "{}", e.message);

        // A server whose certificate another CA signed is not the cluster's.
        let other = ClusterPki::generate(SystemTime::now()).unwrap();
        let (served, port) = api_server(&other, &pki, |_| (200, node_list(&["10.0.2.9"]))).await;
        let api = ApiWait { host: "localhost".into(), port, pki_secret: "s".into() };
        let e = wait_member(&ctx(), &admin(&pki), &api, "10.0.2.9", quick()).await.unwrap_err();
        assert!(e.message.contains("did not prove it is the cluster's API server"), "{}", e.message);
        assert_eq!(served.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn the_server_requires_the_admin_client_certificate() {
        let pki = ClusterPki::generate(SystemTime::now()).unwrap();
        let (served, port) = api_server(&pki, &pki, |_| (200, node_list(&[]))).await;
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        // Signed by another cluster's CA: the server refuses the handshake.
        let stranger = ClusterPki::generate(SystemTime::now()).unwrap();
        let (cert, key) = pki::admin_certificate(&stranger.cluster_ca, SystemTime::now()).unwrap();
        let foreign = AdminClient::new(pki.cluster_ca.cert_pem(), &cert, &key).unwrap();
        let refused = foreign.get(address, "localhost", kubeapi::CONTROL_PLANE_NODES, Duration::from_secs(5)).await;
        assert!(refused.is_err(), "{refused:?}");
        assert_eq!(served.load(Ordering::SeqCst), 0);
        // The cluster's admin gets the list.
        let (status, body) =
            admin(&pki).get(address, "localhost", kubeapi::CONTROL_PLANE_NODES, Duration::from_secs(5)).await.unwrap();
        assert_eq!((status, kubeapi::member(&body, "10.0.0.1").unwrap()), (200, (false, 0)));
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_skipped_with_one_note() {
        let fake = crate::testing::FakeAws::new(|_| (500, String::new()));
        let c = fake.clients().await;
        let api = ApiWait { host: "demo-apiserver-1.invalid".into(), port: 6443, pki_secret: "s".into() };
        until_member(&c, &ctx(), &api, "10.0.1.5").await.unwrap();
        until_member(&c, &ctx(), &api, "10.0.2.9").await.unwrap();
        assert_eq!(c.skipped(), [skipped_note("demo-apiserver-1.invalid")]);
        assert!(fake.sent().is_empty(), "no secret was read");
    }

    #[test]
    fn the_attribute_reads_back_as_written() {
        let attrs = serde_json::json!({"api_wait": {"host": "lb.example", "port": 6443, "pki_secret": "p"}});
        let api = ApiWait::from_attrs(attrs.as_object().unwrap()).unwrap().unwrap();
        assert_eq!(api, ApiWait { host: "lb.example".into(), port: 6443, pki_secret: "p".into() });
        assert_eq!(ApiWait::from_attrs(&Attrs::new()).unwrap(), None);
        let bad = serde_json::json!({"api_wait": {"host": "lb", "port": 70000, "pki_secret": "p"}});
        assert!(ApiWait::from_attrs(bad.as_object().unwrap()).is_err());
    }
}
