//! The local AWS emulator (moto's server) for tests: one server per test.
//!
//! [`Emulator::start`] runs `./.venv/bin/moto_server` (installed by
//! `scripts/emulator.sh install`) on a free port of 127.0.0.1, waits until
//! it answers, and kills exactly that process when dropped. One server per
//! test keeps tests independent while they run in parallel threads; a
//! server costs about 2 s (start, then EC2's first call loads its backend),
//! and those seconds overlap across tests. Clients point at it with
//! [`Emulator::sdk_config`] (explicit endpoint and fake keys, no
//! environment), or through the environment with [`Emulator::env`] (for the
//! CLI binary, or `AwsProvider::connect`). What the emulator does not do like
//! AWS, and which tests cover that instead: docs/testing.md.
//!
//! [`Emulator::start_enforcing_iam`] runs moto through scripts/moto-iam.py
//! instead, with IAM enforcement on: every request is judged against the
//! policies of the IAM user whose access key signed it. [`Emulator::iam_user`]
//! turns policy documents into such a user's [`Keys`]; the emulator's own
//! identity ([`Emulator::env`], [`Emulator::sdk_config`], [`Emulator::clients`])
//! is then an administrator (`*` on `*`), for the test's own checks.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};

pub const REGION: &str = "us-east-1";

pub struct Emulator {
    child: Child,
    port: u16,
    log: PathBuf,
    /// Who [`Self::env`], [`Self::sdk_config`] and [`Self::clients`] sign as.
    keys: Keys,
    /// Where moto's recorder writes each request it is sent
    /// ([`Self::start_recording`]).
    recording: Option<PathBuf>,
}

/// One request the emulator was sent, as its recorder saw it: who signed it
/// (the access key in the SigV4 credential scope), for which service, with
/// which session token.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub access_key_id: String,
    pub service: String,
    pub session_token: Option<String>,
}

/// An access key pair. `session_token` only for the fake keys of an
/// emulator without IAM enforcement.
#[derive(Debug, Clone)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl Keys {
    fn fake() -> Keys {
        Keys {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            session_token: Some("testing".into()),
        }
    }
}

fn moto_server() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    assert!(
        path.exists(),
        "the local AWS emulator is not installed ({} is missing): run `scripts/emulator.sh install` \
         from the repository root (it creates ./.venv with moto[server] 5.2.5)",
        path.display()
    );
    path
}

/// Images cluster-api publishes, as the emulator knows them besides its own
/// (MOTO_AMIS_PATH, docs/testing.md): (id, name, owner, architecture,
/// creation date). Two builds of one version (the newer wins), an arm64
/// build, another version, and a newer image of another owner (a decoy).
pub const CAPA_IMAGES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "ami-0ca9a00000000001",
        "capa-ami-ubuntu-22.04-v1.30.4-1717000000",
        "819546954734",
        "x86_64",
        "2024-05-29T16:26:40.000Z",
    ),
    (
        "ami-0ca9a00000000002",
        "capa-ami-ubuntu-22.04-v1.30.4-1727000000",
        "819546954734",
        "x86_64",
        "2024-09-22T10:13:20.000Z",
    ),
    (
        "ami-0ca9a00000000003",
        "capa-ami-ubuntu-22.04-arm64-v1.30.4-1727000000",
        "819546954734",
        "arm64",
        "2024-09-22T10:13:20.000Z",
    ),
    (
        "ami-0ca9a00000000004",
        "capa-ami-ubuntu-24.04-v1.31.4-1730000000",
        "819546954734",
        "x86_64",
        "2024-10-27T03:33:20.000Z",
    ),
    (
        "ami-0ca9a00000000005",
        "capa-ami-ubuntu-22.04-v1.30.4-1799999999",
        "111122223333",
        "x86_64",
        "2027-01-15T08:53:19.000Z",
    ),
];

/// The image list every emulator starts with: moto's own (its default list
/// and each region's latest Amazon images, which MOTO_AMIS_PATH would
/// otherwise replace) plus [`CAPA_IMAGES`]. Written once per test process.
fn images_file() -> PathBuf {
    static FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("skyplan-moto-amis-{}.json", std::process::id()));
        let capa: Vec<serde_json::Value> = CAPA_IMAGES
            .iter()
            .map(|(id, name, owner, arch, created)| {
                serde_json::json!({
                    "ami_id": id, "name": name, "owner_id": owner, "architecture": arch, "creation_date": created,
                    "state": "available", "public": true, "virtualization_type": "hvm", "hypervisor": "xen",
                    "root_device_type": "ebs", "root_device_name": "/dev/sda1", "image_type": "machine",
                    "sriov": "simple", "description": "Cluster API node image (test)",
                })
            })
            .collect();
        let python = moto_server().with_file_name("python");
        let out = Command::new(&python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/emulator-images.py"))
            .args([path.to_str().unwrap(), &serde_json::Value::Array(capa).to_string()])
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
        assert!(out.status.success(), "writing the emulator's images: {}", String::from_utf8_lossy(&out.stderr));
        path
    })
    .clone()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

/// One HTTP/1.1 request; the status code of the answer.
fn http(port: u16, method: &str, path: &str) -> std::io::Result<u16> {
    http_with_body(port, method, path, "")
}

/// One HTTP/1.1 request with a `text/plain` body; the status code.
fn http_with_body(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    let status = String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0);
    Ok(status)
}

impl Emulator {
    /// Start a server and wait until it answers (at most 30 s).
    pub fn start() -> Emulator {
        Emulator::launch(moto_server(), &[], false)
    }

    /// [`Self::start`], with moto's recorder on (`MOTO_RECORDER_FILEPATH`
    /// and `POST /moto-api/recorder/start-recording`): [`Self::recorded`]
    /// says who signed each request, which fake keys cannot show otherwise
    /// (moto accepts any key).
    pub fn start_recording() -> Emulator {
        let emulator = Emulator::launch(moto_server(), &[], true);
        let status = http(emulator.port, "POST", "/moto-api/recorder/start-recording").expect("start recording");
        assert_eq!(status, 200, "POST /moto-api/recorder/start-recording");
        emulator
    }

    /// Every request recorded since the start or the last
    /// [`Self::clear_recording`], in order.
    pub fn recorded(&self) -> Vec<Recorded> {
        let path = self.recording.as_ref().expect("an emulator started with start_recording");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .map(|line| {
                let entry: serde_json::Value = serde_json::from_str(line).expect("a recorded request is JSON");
                let header = |name: &str| {
                    entry["headers"]
                        .as_object()
                        .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                        .and_then(|(_, v)| v.as_str())
                        .map(str::to_string)
                };
                let authorization = header("Authorization").unwrap_or_default();
                // `AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request, ...`
                let scope: Vec<&str> = authorization
                    .split("Credential=")
                    .nth(1)
                    .and_then(|rest| rest.split(',').next())
                    .unwrap_or_default()
                    .split('/')
                    .collect();
                Recorded {
                    access_key_id: scope.first().unwrap_or(&"").to_string(),
                    service: scope.get(3).unwrap_or(&"").to_string(),
                    session_token: header("X-Amz-Security-Token"),
                }
            })
            .collect()
    }

    /// Forget what was recorded so far (`POST /moto-api/recorder/reset-recording`).
    pub fn clear_recording(&self) {
        let status = http(self.port, "POST", "/moto-api/recorder/reset-recording").expect("reset recording");
        assert_eq!(status, 200, "POST /moto-api/recorder/reset-recording");
    }

    /// The body of `GET path` on the emulator's own API (`/moto-api/data.json`:
    /// everything its backends hold, STS's assumed roles included).
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", self.port).unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read the answer");
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        assert!(head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"), "GET {path}: {head}");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path} is not JSON ({e}): {body}"))
    }

    /// Start moto through scripts/moto-iam.py (moto judging IAM as AWS
    /// does: docs/testing.md), create an administrator (`*` on `*`), switch
    /// enforcement on, and sign as that administrator from then on. Users
    /// with other policies: [`Self::iam_user`].
    pub fn start_enforcing_iam() -> Emulator {
        let launcher = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/moto-iam.py");
        let python = moto_server().with_file_name("python");
        let mut emulator = Emulator::launch(python, &[launcher.as_os_str()], false);
        let admin = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
        });
        emulator.keys = emulator.iam_user("skyplan-test-admin", &[admin]);
        let status = http_with_body(emulator.port, "POST", "/moto-api/reset-auth", "0").expect("reset-auth");
        assert_eq!(status, 200, "switching IAM enforcement on (POST /moto-api/reset-auth 0)");
        emulator
    }

    fn launch(program: PathBuf, leading_args: &[&std::ffi::OsStr], record: bool) -> Emulator {
        let images = images_file();
        let mut last_error = String::new();
        // A port found free can be taken before the server binds it: try again then.
        for _ in 0..3 {
            let port = free_port();
            let log = std::env::temp_dir().join(format!("skyplan-moto-{port}.log"));
            let log_file = std::fs::File::create(&log).expect("emulator log file");
            let recording = record.then(|| std::env::temp_dir().join(format!("skyplan-moto-{port}.requests.jsonl")));
            let mut command = Command::new(&program);
            if let Some(path) = &recording {
                let _ = std::fs::remove_file(path);
                command.env("MOTO_RECORDER_FILEPATH", path);
            }
            let child = command
                .args(leading_args)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("MOTO_AMIS_PATH", &images)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("log file handle"))
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| panic!("could not start {}: {e}", program.display()));
            let mut emulator = Emulator { child, port, log, keys: Keys::fake(), recording };
            match emulator.wait_ready(Duration::from_secs(30)) {
                Ok(()) => return emulator,
                Err(e) => last_error = e,
            }
            // `emulator` is dropped here: the failed server is killed.
        }
        panic!("the AWS emulator did not start: {last_error}");
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                return Err(format!("moto_server exited ({status}); its log:\n{log}"));
            }
            if let Ok(200) = http(self.port, "GET", "/moto-api/") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("moto_server did not answer on 127.0.0.1:{} within {limit:?}", self.port))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Wipe everything the emulator holds (`POST /moto-api/reset`).
    #[allow(dead_code)]
    pub fn reset(&self) {
        let status = http(self.port, "POST", "/moto-api/reset").expect("emulator reset");
        assert_eq!(status, 200, "emulator reset");
    }

    /// The environment that points the SDK's default chain (and so the CLI
    /// and `AwsProvider::connect`) at this emulator with fake keys.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        self.env_as(&self.keys)
    }

    /// [`Self::env`] signing with `keys` (an IAM user's, from
    /// [`Self::iam_user`]). `AWS_SESSION_TOKEN` is set empty when the keys
    /// have none, so one inherited from the caller cannot leak in.
    pub fn env_as(&self, keys: &Keys) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.url()),
            ("AWS_ACCESS_KEY_ID", keys.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", keys.secret_access_key.clone()),
            ("AWS_SESSION_TOKEN", keys.session_token.clone().unwrap_or_default()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// An SDK configuration for this emulator that reads nothing from the
    /// environment, so tests with different emulators can run side by side.
    pub async fn sdk_config(&self) -> SdkConfig {
        self.sdk_config_as(&self.keys).await
    }

    /// [`Self::sdk_config`] signing with `keys`.
    pub async fn sdk_config_as(&self, keys: &Keys) -> SdkConfig {
        let keys = aws_credential_types::Credentials::new(
            keys.access_key_id.clone(),
            keys.secret_access_key.clone(),
            keys.session_token.clone(),
            None,
            "emulator",
        );
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.url())
            .credentials_provider(keys)
            .load()
            .await
    }

    /// EC2, classic ELB and Auto Scaling clients of [`Self::sdk_config`], for
    /// checking what exists independently of the provider under test.
    pub fn clients(
        &self,
        rt: &tokio::runtime::Runtime,
    ) -> (aws_sdk_ec2::Client, aws_sdk_elasticloadbalancing::Client, aws_sdk_autoscaling::Client) {
        let config = rt.block_on(self.sdk_config());
        (
            aws_sdk_ec2::Client::new(&config),
            aws_sdk_elasticloadbalancing::Client::new(&config),
            aws_sdk_autoscaling::Client::new(&config),
        )
    }
}

impl Emulator {
    /// A new IAM user holding exactly `documents` (IAM policy documents), as
    /// customer managed policies attached to it (CreatePolicy +
    /// AttachUserPolicy), and an access key of it. A document over AWS's
    /// managed policy size is split into several that allow the same
    /// (`policy::split`). Works with enforcement on or off: the calls are
    /// signed as this emulator's own identity. Names must be unique per
    /// emulator. (Made with boto3 from ./.venv: scripts/moto-iam-user.py.)
    pub fn iam_user(&self, name: &str, documents: &[serde_json::Value]) -> Keys {
        use skyplan_aws_blueprint::policy::{self, PolicyDocument};
        let mut texts = Vec::new();
        for doc in documents {
            let text = serde_json::to_string(doc).expect("a policy document serializes");
            if text.chars().filter(|c| !c.is_whitespace()).count() <= policy::MANAGED_POLICY_LIMIT {
                texts.push(text);
                continue;
            }
            let parsed: PolicyDocument = serde_json::from_value(doc.clone())
                .unwrap_or_else(|e| panic!("a policy over the managed policy size must be one skyplan can split: {e}"));
            for part in policy::split(&parsed, policy::MANAGED_POLICY_LIMIT) {
                texts.push(serde_json::to_string(&part).expect("a policy document serializes"));
            }
        }
        let (keys, attached) = self.create_iam_user(name, &texts);
        assert_eq!(attached, texts.len(), "user {name}: every policy attached");
        keys
    }

    /// scripts/moto-iam-user.py: the user, its policies and access key,
    /// signed as this emulator's identity; the keys and how many policies
    /// the user holds (read back with ListAttachedUserPolicies).
    fn create_iam_user(&self, name: &str, documents: &[String]) -> (Keys, usize) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/moto-iam-user.py");
        let mut child = Command::new(moto_server().with_file_name("python"))
            .arg(&script)
            .args([&self.url(), name])
            .envs(self.env_as(&self.keys))
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", script.display()));
        let docs: Vec<serde_json::Value> =
            documents.iter().map(|t| serde_json::from_str(t).expect("a policy document")).collect();
        child.stdin.take().unwrap().write_all(&serde_json::to_vec(&docs).unwrap()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "creating IAM user {name}: {}", String::from_utf8_lossy(&out.stderr));
        let made: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the script's JSON answer");
        let keys = Keys {
            access_key_id: made["AccessKeyId"].as_str().unwrap().to_string(),
            secret_access_key: made["SecretAccessKey"].as_str().unwrap().to_string(),
            session_token: None,
        };
        (keys, made["Policies"].as_u64().unwrap() as usize)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
        if let Some(path) = &self.recording {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[test]
fn aws_emulator_starts_answers_resets_and_stops_on_drop() {
    let emulator = Emulator::start();
    let port = emulator.port;
    emulator.reset();
    drop(emulator);
    assert!(http(port, "GET", "/moto-api/").is_err(), "the server is gone after drop");
}

/// The harness itself: with enforcement on, a user may make exactly the
/// calls its policy allows (moto answers a denied EC2 call `AccessDenied`,
/// AWS `UnauthorizedOperation`), a policy
/// over the managed policy size still grants all of it, and the
/// administrator may do anything.
#[test]
fn an_iam_enforcing_emulator_denies_what_a_policy_does_not_allow() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = Emulator::start_enforcing_iam();
    let describe_vpcs = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["ec2:DescribeVpcs"], "Resource": "*"}]
    });
    let reader = emulator.iam_user("reader", &[describe_vpcs]);
    // More actions than one managed policy holds: split, all granted.
    let mut many: Vec<String> = (0..300).map(|i| format!("ec2:DescribeNothingNumber{i:03}")).collect();
    many.push("ec2:DescribeSubnets".into());
    let big = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": many, "Resource": "*"}]
    });
    let big_user = emulator.iam_user("big", std::slice::from_ref(&big));
    let parts = skyplan_aws_blueprint::policy::split(
        &serde_json::from_value(big).unwrap(),
        skyplan_aws_blueprint::policy::MANAGED_POLICY_LIMIT,
    );
    assert!(parts.len() > 1, "the big policy is over one managed policy's size");
    rt.block_on(async {
        let as_reader = aws_sdk_ec2::Client::new(&emulator.sdk_config_as(&reader).await);
        as_reader.describe_vpcs().send().await.expect("DescribeVpcs is allowed");
        let denied = as_reader.describe_subnets().send().await.expect_err("DescribeSubnets is not allowed");
        let code = denied.as_service_error().and_then(|e| aws_sdk_ec2::error::ProvideErrorMetadata::code(e));
        // moto answers EC2's denials as `AccessDenied`; AWS as `UnauthorizedOperation`.
        assert!(matches!(code, Some("AccessDenied" | "UnauthorizedOperation")), "{denied:?}");
        // A description with spaces: moto's own SigV4 check would refuse the SDK's signature.
        let denied = as_reader
            .create_security_group()
            .group_name("web")
            .description("a group with spaces")
            .send()
            .await
            .expect_err("CreateSecurityGroup is not allowed");
        let code = denied.as_service_error().and_then(|e| aws_sdk_ec2::error::ProvideErrorMetadata::code(e));
        // moto answers EC2's denials as `AccessDenied`; AWS as `UnauthorizedOperation`.
        assert!(matches!(code, Some("AccessDenied" | "UnauthorizedOperation")), "{denied:?}");

        let as_big = aws_sdk_ec2::Client::new(&emulator.sdk_config_as(&big_user).await);
        as_big.describe_subnets().send().await.expect("the last action of a split policy is granted");
        as_big.describe_vpcs().send().await.expect_err("DescribeVpcs is not granted to `big`");

        let ec2 = aws_sdk_ec2::Client::new(&emulator.sdk_config().await);
        ec2.create_security_group()
            .group_name("web")
            .description("a group with spaces")
            .send()
            .await
            .expect("the administrator may do anything");
    });
}

/// The launch data of the default version of the launch template `name`,
/// read with the SDK.
pub async fn default_template_data(
    ec2: &aws_sdk_ec2::Client,
    name: &str,
) -> aws_sdk_ec2::types::ResponseLaunchTemplateData {
    template_data(ec2, name, "$Default").await
}

/// The launch data of `version` (`$Latest`, `$Default`, a number) of the
/// launch template `name`, read with the SDK.
pub async fn template_data(
    ec2: &aws_sdk_ec2::Client,
    name: &str,
    version: &str,
) -> aws_sdk_ec2::types::ResponseLaunchTemplateData {
    let versions =
        ec2.describe_launch_template_versions().launch_template_name(name).versions(version).send().await.unwrap();
    versions.launch_template_versions()[0].launch_template_data().unwrap().clone()
}
