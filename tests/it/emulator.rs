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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

/// One HTTP/1.1 request; the status code of the answer.
fn http(port: u16, method: &str, path: &str) -> std::io::Result<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    let status = String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0);
    Ok(status)
}

impl Emulator {
    /// Start a server and wait until it answers (at most 30 s).
    pub fn start() -> Emulator {
        let program = moto_server();
        let mut last_error = String::new();
        // A port found free can be taken before the server binds it: try again then.
        for _ in 0..3 {
            let port = free_port();
            let log = std::env::temp_dir().join(format!("skyplan-moto-{port}.log"));
            let log_file = std::fs::File::create(&log).expect("emulator log file");
            let child = Command::new(&program)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("log file handle"))
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| panic!("could not start {}: {e}", program.display()));
            let mut emulator = Emulator { child, port, log };
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
        vec![
            ("AWS_ENDPOINT_URL", self.url()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_SESSION_TOKEN", "testing".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// An SDK configuration for this emulator that reads nothing from the
    /// environment, so tests with different emulators can run side by side.
    pub async fn sdk_config(&self) -> SdkConfig {
        let keys = aws_credential_types::Credentials::new("testing", "testing", None, None, "emulator");
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

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
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
