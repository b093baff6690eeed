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

/// A backend on `moto` whose endpoint and keys are given here, not read from
/// the environment (the conformance test sets that for itself, in parallel).
fn backend_on(moto: &Moto, key: &str) -> S3Backend {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(moto.url())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .force_path_style(true)
        .build();
    S3Backend {
        bucket: LOCK_BUCKET.into(),
        key: key.into(),
        client: aws_sdk_s3::Client::from_conf(config),
        runtime: Some(runtime),
        persisted: std::sync::Mutex::new(false),
    }
}

const LOCK_BUCKET: &str = "skyplan-lock-races";

/// `unlock` reads the lock, checks its id, then deletes it only if its ETag
/// is still the one read (`If-Match`). Here another run releases the lock
/// and takes it again inside that window: the stale ETag deletes nothing,
/// and the new holder's lock stays. Released and not taken again: nothing
/// to release, and nothing is created.
#[test]
fn unlock_with_a_stale_etag_deletes_nothing() {
    use skyplan_state::{LockInfo, StateError};

    let moto = Moto::start();
    let (a, b) = (backend_on(&moto, KEY), backend_on(&moto, KEY));
    a.block(a.client.create_bucket().bucket(LOCK_BUCKET).send()).expect("create the test bucket");

    let first = LockInfo::new("apply");
    let second = LockInfo::new("apply");
    a.lock(&first, Duration::ZERO).expect("a free lock");
    let raced = a.unlock_between(&first.id, || {
        b.unlock(&first.id).expect("the other run releases the lock it read");
        b.lock(&second, Duration::ZERO).expect("and takes it again");
    });
    match raced {
        Err(StateError::LockIo { cause, .. }) => {
            assert!(cause.to_string().contains("nothing was deleted"), "{cause}")
        }
        other => panic!("an unlock whose lock changed after it was read must fail, got {other:?}"),
    }
    assert_eq!(a.current_lock().unwrap(), Some(second.clone()), "the new holder's lock is still there");
    assert_eq!(b.current_lock().unwrap(), Some(second.clone()));

    // Released in the window and not taken again: nothing to release.
    let gone = a.unlock_between(&second.id, || b.unlock(&second.id).expect("released by the other run"));
    assert!(matches!(gone, Err(StateError::NotLocked { .. })), "{gone:?}");
    assert_eq!(a.current_lock().unwrap(), None);

    // With nothing in the window, the holder's unlock releases its own lock.
    a.lock(&first, Duration::ZERO).expect("a free lock");
    a.unlock(&first.id).expect("unlock with the held id and an unchanged lock");
    assert_eq!(b.current_lock().unwrap(), None);
}
