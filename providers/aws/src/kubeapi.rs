//! A small HTTPS client for the cluster's Kubernetes API server, enough for
//! skyplan's wait on the control plane (`apiwait.rs`): one GET over TLS
//! (rustls through tokio-rustls), trusting only the cluster CA and
//! presenting an admin client certificate that CA signed, HTTP/1.1 written
//! by hand (`Connection: close`; a fixed-length or chunked body), and the
//! question asked of the answer: is the node with this private address a
//! control-plane member?

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The path that lists the control-plane nodes (kubeadm labels them).
pub(crate) const CONTROL_PLANE_NODES: &str = "/api/v1/nodes?labelSelector=node-role.kubernetes.io%2Fcontrol-plane";

/// The most of an answer read (a node list of a few control planes is a
/// few tens of KB).
const MAX_ANSWER: usize = 16 << 20;

/// Why a request got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Not up yet (refused, reset, timed out, a 5xx, the load balancer has
    /// no healthy node): worth asking again.
    NotYet(String),
    /// The server is not the cluster's, or refuses these credentials:
    /// asking again will not help.
    Refused(String),
}

/// An admin's HTTPS client for one cluster.
#[derive(Clone)]
pub(crate) struct AdminClient {
    tls: TlsConnector,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminClient { key: (sensitive) }")
    }
}

impl AdminClient {
    /// A client trusting `ca_pem` only, authenticating with the client
    /// certificate `cert_pem` and its key `key_pem` (PKCS#1 or PKCS#8).
    pub fn new(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<AdminClient, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("the cluster CA certificate is not PEM: {e}"))?;
            roots.add(cert).map_err(|e| format!("the cluster CA certificate is not usable: {e}"))?;
        }
        if roots.is_empty() {
            return Err("the cluster CA certificate is missing".into());
        }
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the admin certificate is not PEM: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| format!("the admin key is not a PEM private key: {e}"))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("the admin certificate and key do not go together: {e}"))?;
        Ok(AdminClient { tls: TlsConnector::from(Arc::new(config)) })
    }

    /// GET `path` from the server at `address`, which must prove it is
    /// `host` (the name the API server's certificate carries); the status
    /// and the body, within `timeout`.
    pub async fn get(
        &self,
        address: SocketAddr,
        host: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), Failure> {
        match tokio::time::timeout(timeout, self.get_unbounded(address, host, path)).await {
            Ok(answer) => answer,
            Err(_) => Err(Failure::NotYet(format!("no answer from {address} within {} s", timeout.as_secs()))),
        }
    }

    async fn get_unbounded(&self, address: SocketAddr, host: &str, path: &str) -> Result<(u16, Vec<u8>), Failure> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| Failure::Refused(format!("{host:?} is not a server name: {e}")))?;
        let tcp = TcpStream::connect(address).await.map_err(|e| Failure::NotYet(format!("{address}: {e}")))?;
        let mut tls = self.tls.connect(name, tcp).await.map_err(|e| handshake_failure(address, e))?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{}\r\nAccept: application/json\r\nUser-Agent: skyplan\r\nConnection: close\r\n\r\n",
            address.port()
        );
        tls.write_all(request.as_bytes()).await.map_err(|e| Failure::NotYet(format!("{address}: {e}")))?;
        let mut raw = Vec::new();
        let read = (&mut tls).take(MAX_ANSWER as u64).read_to_end(&mut raw).await;
        // A server that closes without close_notify still sent a whole answer.
        if let Err(e) = read {
            if raw.is_empty() {
                return Err(Failure::NotYet(format!("{address}: {e}")));
            }
        }
        parse_response(&raw).map_err(Failure::NotYet)
    }
}

/// A failed handshake: a certificate the cluster CA did not sign (another
/// server behind the name) is final; anything else may be a node still
/// starting behind the load balancer.
fn handshake_failure(address: SocketAddr, e: std::io::Error) -> Failure {
    let text = e.to_string();
    let certificate = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
    if certificate {
        Failure::Refused(format!(
            "{address} did not prove it is the cluster's API server (its certificate is not the cluster CA's): {text}"
        ))
    } else {
        Failure::NotYet(format!("{address}: TLS: {text}"))
    }
}

/// An HTTP/1.1 answer read to its end: the status and the body (chunked
/// bodies decoded).
pub(crate) fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("an incomplete HTTP answer")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "an HTTP head that is not text")?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| format!("not an HTTP/1.1 status line: {status_line:?}"))?;
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_ascii_lowercase())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        return Ok((status, dechunk(body)?));
    }
    match header("content-length").map(|v| v.parse::<usize>()) {
        Some(Ok(n)) if body.len() >= n => Ok((status, body[..n].to_vec())),
        Some(Ok(n)) => Err(format!("an answer cut short ({} of {n} bytes)", body.len())),
        Some(Err(_)) => Err("a Content-Length that is not a number".into()),
        None => Ok((status, body.to_vec())),
    }
}

/// A chunked body's bytes.
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").ok_or("a chunked answer cut short")?;
        let size_text = std::str::from_utf8(&body[..line_end]).map_err(|_| "a chunk size that is not text")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("a chunk size {size_text:?}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            return Err("a chunked answer cut short".into());
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// Whether a NodeList (JSON) holds a node whose `InternalIP` is
/// `private_ip`, and how many nodes it lists.
pub(crate) fn member(body: &[u8], private_ip: &str) -> Result<(bool, usize), String> {
    let list: Value = serde_json::from_slice(body).map_err(|e| format!("the node list is not JSON: {e}"))?;
    let items = list["items"].as_array().ok_or("the answer is not a node list")?;
    let found = items.iter().any(|node| {
        node["status"]["addresses"].as_array().is_some_and(|addresses| {
            addresses.iter().any(|a| a["type"] == "InternalIP" && a["address"].as_str() == Some(private_ip))
        })
    });
    Ok((found, items.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_with_a_length_chunked_or_until_close() {
        let fixed = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_response(fixed).unwrap(), (200, b"{}".to_vec()));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (200, b"{\"a\":1}".to_vec()));
        let closed = b"HTTP/1.1 403 Forbidden\r\n\r\nno";
        assert_eq!(parse_response(closed).unwrap(), (403, b"no".to_vec()));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}").is_err(), "cut short");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{}").is_err());
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200").is_err());
    }

    #[test]
    fn a_member_is_found_by_its_internal_address() {
        let list = serde_json::json!({"kind": "NodeList", "items": [
            {"metadata": {"name": "ip-10-0-1-5"}, "status": {"addresses": [
                {"type": "InternalIP", "address": "10.0.1.5"}, {"type": "Hostname", "address": "ip-10-0-1-5"}]}},
            {"metadata": {"name": "ip-10-0-2-9"}, "status": {"addresses": [{"type": "ExternalIP", "address": "10.0.2.7"}]}},
        ]});
        let body = serde_json::to_vec(&list).unwrap();
        assert_eq!(member(&body, "10.0.1.5").unwrap(), (true, 2));
        assert_eq!(member(&body, "10.0.2.7").unwrap(), (false, 2), "only the InternalIP counts");
        assert!(member(b"{\"kind\": \"Status\"}", "10.0.1.5").is_err());
        assert!(member(b"<html>", "10.0.1.5").is_err());
    }
}
