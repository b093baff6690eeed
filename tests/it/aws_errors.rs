//! AWS failures as a person sees them, through the binary: each case gets a
//! sentence naming what to do, never the SDK's Debug output, and the SDK's
//! own log lines stay off stderr without `-v` (docs/testing.md, "AWS errors
//! a person can act on", quotes each message).

use std::time::{Duration, Instant};

use crate::aws_cli::example;
use crate::emulator::Emulator;
use crate::faultproxy::{self, FaultProxy, Rates};
use crate::support::{Run, Workdir};

/// What no user-facing error may hold: the SDK's Debug forms and its logs.
#[track_caller]
fn assert_readable(run: &Run) {
    for debug in ["DispatchFailure", "ConnectorError", "Response {", "StatusCode(", "WARN aws_", "\u{1b}["] {
        assert!(!run.stderr.contains(debug), "stderr holds {debug:?}:\n{}", run.stderr);
    }
}

/// A 127.0.0.1 port with nothing listening.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn fake_keys(w: &mut Workdir, endpoint: &str) {
    w.env = vec![
        ("AWS_ENDPOINT_URL".into(), endpoint.into()),
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
}

/// Nothing at the endpoint: `plan` fails within about ten seconds (it was
/// 45 s of silence), naming the URL; the SDK's warnings appear only with
/// `-v`, and uncoloured with `--color never`.
#[test]
fn an_unreachable_endpoint_fails_fast_naming_the_url() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let mut w = Workdir::new();
    fake_keys(&mut w, &url);
    w.write("demo.toml", &example());
    let start = Instant::now();
    let out = w.command(&["plan", "demo.toml"]).env_remove("NO_COLOR").output().unwrap();
    let took = start.elapsed();
    let out = Run::from(out).code(1);
    assert!(took < Duration::from_secs(15), "took {took:?}:\n{}", out.stderr);
    assert!(out.stderr.contains(&format!("could not reach AWS at {url}: connection refused")), "{}", out.stderr);
    assert!(out.stderr.contains("help: check the network, the region, and AWS_ENDPOINT_URL"), "{}", out.stderr);
    assert!(out.stderr.lines().filter(|l| l.starts_with("error:")).count() == 1, "{}", out.stderr);
    assert_readable(&out);

    let verbose = w.run(&["-v", "--color", "never", "plan", "demo.toml"]).code(1);
    assert!(verbose.stderr.contains(&url), "{}", verbose.stderr);
    assert!(!verbose.stderr.contains('\u{1b}'), "--color never, yet coloured:\n{}", verbose.stderr);
}

/// `AWS_PROFILE=nope`: the profile and the files searched are named (it
/// was an instance-metadata 403 dump), before any request.
#[test]
fn a_missing_profile_is_named_with_the_files_searched() {
    let w = Workdir::new();
    w.write("demo.toml", &example());
    let config = w.write("config", "[default]\nregion = us-east-1\n[profile prod]\nregion = eu-west-1\n");
    let credentials = w.path("no-credentials");
    let mut cmd = w.command(&["plan", "demo.toml"]);
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
        cmd.env_remove(var);
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    cmd.env("AWS_PROFILE", "nope")
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint);
    let out = Run::from(cmd.output().unwrap()).code(1);
    let expected = format!(
        "AWS profile `nope` (from AWS_PROFILE) does not exist: searched {} and {} (does not exist); profiles there: default, prod",
        config.display(),
        credentials.display()
    );
    assert!(out.stderr.contains(&expected), "{}", out.stderr);
    assert!(out.stderr.contains("aws configure --profile nope"), "{}", out.stderr);
    assert_readable(&out);
    assert!(listener.accept().is_err(), "a request went out before the profile was checked");
}

/// Throttling that never clears: the service, the code and how long it was
/// retried are named, with what to do.
#[test]
fn throttling_that_does_not_clear_names_the_service_and_how_long() {
    let emulator = Emulator::start();
    let always = Rates {
        throttle: 1.0,
        server_error: 0.0,
        reset_before: 0.0,
        reset_after: 0.0,
        delay: 0.0,
        max_delay: Duration::ZERO,
    };
    let proxy = FaultProxy::start(&emulator.url(), always, faultproxy::seed());
    let mut w = Workdir::new();
    fake_keys(&mut w, &proxy.url());
    // One VPC: the shortest spec that calls EC2 (CreateVpc first).
    w.write("net.toml", "[resource.aws_vpc.main]\ncidr_block = \"10.0.0.0/16\"\n");
    let out = w.run(&["apply", "net.toml", "--auto-approve"]).code(1);
    let line = out.stderr.lines().find(|l| l.contains("kept throttling")).unwrap_or_else(|| panic!("{}", out.stderr));
    // The first EC2 call of the run (apply's preflight asks before CreateVpc).
    assert!(line.contains("error: ec2:"), "{line}");
    assert!(line.contains(" failed: ec2 kept throttling the requests (RequestLimitExceeded) for "), "{line}");
    assert!(line.contains(" s over 10 tries"), "{line}");
    assert!(out.stderr.contains("lower skyplan's rate with --rate-limit"), "{}", out.stderr);
    assert_readable(&out);
}
