//! The S3 backend against the state conformance suite
//! (`skyplan_state::conformance`), on a local moto server.
//!
//! moto is the one the repository's `scripts/emulator.sh install` puts in
//! `./.venv`; the server listens on a free port of 127.0.0.1 and is killed
//! (by its own process handle) when the test ends. The backup is read with
//! a separate S3 client, not through the backend under test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use skyplan_state::conformance::{run, Subject};
use skyplan_state::{Backend, State};

use crate::S3Backend;

const BUCKET: &str = "skyplan-conformance";
const KEY: &str = "team/demo.state.json";

/// A moto server on loopback, killed when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Moto {
        let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server");
        assert!(
            program.exists(),
            "the local AWS emulator is not installed ({} is missing): run `scripts/emulator.sh install` \
             from the repository root",
            program.display()
        );
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", program.display()));
        let mut moto = Moto { child, port };
        let start = Instant::now();
        while !moto.answers() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited at start ({status})");
            }
            assert!(start.elapsed() < Duration::from_secs(30), "moto_server did not answer on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    fn answers(&self) -> bool {
        let attempt = || -> std::io::Result<bool> {
            let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            write!(stream, "GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
            let mut head = [0u8; 12];
            stream.read_exact(&mut head)?;
            Ok(&head[9..12] == b"200")
        };
        attempt().unwrap_or(false)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn s3_backend_passes_the_backend_conformance_suite() {
    let moto = Moto::start();
    // `S3Backend::new` takes its endpoint and keys from the SDK's default
    // chain, as the CLI does. This is the crate's only test that reads them.
    for (name, value) in [
        ("AWS_ENDPOINT_URL", moto.url()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ] {
        std::env::set_var(name, value);
    }

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = runtime.block_on(async {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build())
    });
    runtime.block_on(client.create_bucket().bucket(BUCKET).send()).expect("create the test bucket");

    let url = format!("s3://{BUCKET}/{KEY}");
    let open = || Box::new(S3Backend::new(&url, None).expect("an S3 backend")) as Box<dyn Backend>;
    let read_backup = || {
        let object = match runtime.block_on(client.get_object().bucket(BUCKET).key(format!("{KEY}.backup")).send()) {
            Ok(object) => object,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return None,
            Err(e) => panic!("cannot read the backup: {e:?}"),
        };
        let body = runtime.block_on(object.body.collect()).expect("the backup's body").into_bytes();
        Some(serde_json::from_slice::<State>(&body).expect("the backup is valid state"))
    };
    run(&Subject { open: &open, read_backup: &read_backup });
}
