//! An offline stand-in for AWS's endpoints, for unit tests of the real
//! request paths: what the emulator cannot show (states that take time,
//! ClientToken, throttling, eventual consistency, blocked deletes).
//!
//! [`FakeAws`] is an SDK HTTP client: every request the provider sends is
//! decoded (`Action` and form parameters of the query protocols EC2, ELB
//! and auto scaling use; the target and top-level JSON fields of Secrets
//! Manager's JSON protocol) and recorded, and a test's responder answers with
//! a status and an XML body. Nothing leaves the process.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use skyplan_engine::{Address, OpContext};

use crate::clients::Clients;

/// One request as the fake endpoint saw it.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub action: String,
    pub params: BTreeMap<String, String>,
}

impl Sent {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// Values of every parameter whose name matches `prefix*suffix`.
    pub fn values(&self, prefix: &str, suffix: &str) -> Vec<&str> {
        self.params
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && k.ends_with(suffix))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

type Responder = dyn Fn(&Sent) -> (u16, String) + Send + Sync;

#[derive(Clone)]
pub(crate) struct FakeAws {
    sent: Arc<Mutex<Vec<Sent>>>,
    respond: Arc<Responder>,
}

impl fmt::Debug for FakeAws {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FakeAws")
    }
}

fn form_decode(body: &[u8]) -> BTreeMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                    out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn json_params(body: &[u8]) -> BTreeMap<String, String> {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let Some(object) = value.as_object() else { return BTreeMap::new() };
    object.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect()
}

impl HttpConnector for FakeAws {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let body = request.body().bytes().unwrap_or_default();
        let sent = match request.headers().get("x-amz-target") {
            // The JSON protocol (Secrets Manager): `secretsmanager.CreateSecret`
            // and a JSON object, each top-level value as text.
            Some(target) => {
                Sent { action: target.rsplit('.').next().unwrap_or_default().to_string(), params: json_params(body) }
            }
            None => {
                let params = form_decode(body);
                Sent { action: params.get("Action").cloned().unwrap_or_default(), params }
            }
        };
        self.sent.lock().unwrap().push(sent.clone());
        let (status, body) = (self.respond)(&sent);
        let response = HttpResponse::new(StatusCode::try_from(status).expect("valid status"), SdkBody::from(body));
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for FakeAws {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl FakeAws {
    pub fn new(respond: impl Fn(&Sent) -> (u16, String) + Send + Sync + 'static) -> Self {
        FakeAws { sent: Arc::default(), respond: Arc::new(respond) }
    }

    /// Provider clients that talk to this fake.
    pub async fn clients(&self) -> Clients {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            )))
            .endpoint_url("http://aws.test")
            .http_client(self.clone())
            .load()
            .await;
        Clients::new(&sdk)
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }

    pub fn actions(&self) -> Vec<String> {
        self.sent().into_iter().map(|s| s.action).collect()
    }
}

/// An EC2 answer to `action` with `inner` as its body.
pub(crate) fn ec2_ok(action: &str, inner: &str) -> (u16, String) {
    (
        200,
        format!(
            r#"<{action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId>{inner}</{action}Response>"#
        ),
    )
}

/// An EC2 error answer.
pub(crate) fn ec2_error(status: u16, code: &str, message: &str) -> (u16, String) {
    (
        status,
        format!("<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>r</RequestID></Response>"),
    )
}

/// A context whose progress reports are collected.
pub(crate) fn recording_ctx(address: Address, token: &str) -> (OpContext, Arc<Mutex<Vec<String>>>) {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    let ctx = OpContext::new(address, token.to_string(), Some(Arc::new(move |p| sink.lock().unwrap().push(p.message))));
    (ctx, reports)
}

#[test]
fn decodes_form_bodies() {
    let p = form_decode(b"Action=CreateTags&Tag.1.Key=skyplan%3Aaddress&Tag.1.Value=aws_vpc.main&X=a+b");
    assert_eq!(p["Action"], "CreateTags");
    assert_eq!(p["Tag.1.Key"], "skyplan:address");
    assert_eq!(p["X"], "a b");
}
