//! A fault-injecting HTTP proxy between skyplan and the local AWS emulator,
//! on 127.0.0.1, for the API-fault tests (`aws_faults.rs`,
//! docs/testing.md).
//!
//! Each request that arrives is read whole, then a seeded random draw picks
//! what happens to it:
//!
//! - **throttled** (not forwarded): the service's real throttling answer. EC2
//!   (query API): HTTP 503 `<Response><Errors><Error><Code>RequestLimitExceeded`;
//!   classic ELB and Auto Scaling: HTTP 400 `<ErrorResponse><Error><Type>Sender
//!   </Type><Code>Throttling`;
//! - **server error** (not forwarded): HTTP 500, EC2's `InternalError` or
//!   the others' `InternalFailure`, in the same shapes;
//! - **reset before** (not forwarded): the connection is dropped with a TCP
//!   reset after the request was read;
//! - **reset after** (forwarded): the emulator executed the request, and the
//!   answer is lost: the connection is reset instead of relaying it. This is
//!   the ambiguous case: a create that "failed" did create;
//! - **delayed** (forwarded after a pause), or passed through untouched.
//!
//! The first three are what AWS answers without executing the request. The
//! seed fixes the sequence of draws: the n-th request to arrive gets the
//! same fault in every run with that seed (with `--parallelism 1` a run is
//! replayed exactly, up to the emulator's random ids). Tests print it and
//! take `SKYPLAN_FAULT_SEED` to replay one. Requests that are not signed
//! for ec2, elasticloadbalancing or autoscaling pass through untouched.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often each fault happens, as a share of requests (0.0 - 1.0).
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    pub throttle: f64,
    pub server_error: f64,
    pub reset_before: f64,
    pub reset_after: f64,
    /// Share of the remaining requests forwarded after a pause of up to
    /// `max_delay`.
    pub delay: f64,
    pub max_delay: Duration,
}

impl Rates {
    /// Requests that fail, all causes together.
    pub fn failing(&self) -> f64 {
        self.throttle + self.server_error + self.reset_before + self.reset_after
    }
}

/// What the proxy did, per fault.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every request that arrived (faulted or not).
    pub requests: u64,
    pub throttled: u64,
    pub server_errors: u64,
    pub resets_before: u64,
    pub resets_after: u64,
    pub delayed: u64,
}

impl Counts {
    /// Requests that the client saw fail.
    pub fn failed(&self) -> u64 {
        self.throttled + self.server_errors + self.resets_before + self.resets_after
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Throttle,
    ServerError,
    ResetBefore,
    ResetAfter,
    Delay(Duration),
    None,
}

struct Shared {
    rates: Rates,
    rng: Mutex<fastrand::Rng>,
    counts: Mutex<Counts>,
    upstream: SocketAddr,
    stop: AtomicBool,
    /// Actions whose next answer is lost (reset after forwarding).
    lose_next: Mutex<Vec<String>>,
}

impl Shared {
    fn draw(&self) -> Fault {
        let mut rng = self.rng.lock().unwrap();
        let r = &self.rates;
        let u = rng.f64();
        let delay = rng.f64();
        let pause = r.max_delay.mul_f64(rng.f64());
        let mut edge = r.throttle;
        if u < edge {
            return Fault::Throttle;
        }
        edge += r.server_error;
        if u < edge {
            return Fault::ServerError;
        }
        edge += r.reset_before;
        if u < edge {
            return Fault::ResetBefore;
        }
        edge += r.reset_after;
        if u < edge {
            return Fault::ResetAfter;
        }
        if delay < r.delay {
            return Fault::Delay(pause);
        }
        Fault::None
    }
}

pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// The seed: `SKYPLAN_FAULT_SEED` when set (to replay a run), else fresh.
pub fn seed() -> u64 {
    match std::env::var("SKYPLAN_FAULT_SEED") {
        Ok(s) => s.parse().expect("SKYPLAN_FAULT_SEED is a number"),
        Err(_) => fastrand::u64(..),
    }
}

impl FaultProxy {
    /// Listen on a free port of 127.0.0.1 and forward to `upstream`.
    pub fn start(upstream: &str, rates: Rates, seed: u64) -> FaultProxy {
        let upstream: SocketAddr =
            upstream.trim_start_matches("http://").parse().expect("the emulator's address is host:port");
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port for the proxy");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            rates,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            counts: Mutex::new(Counts::default()),
            upstream,
            stop: AtomicBool::new(false),
            lose_next: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(&s, conn);
                });
            }
        });
        FaultProxy { port, shared, accept: Some(accept) }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn counts(&self) -> Counts {
        *self.shared.counts.lock().unwrap()
    }

    /// Lose the answer to the next request of each of these actions (query
    /// API `Action=`): it is forwarded, then the connection is reset. For
    /// deterministic tests of the ambiguous case, on top of the rates.
    pub fn lose_next_answer_to(&self, actions: &[&str]) {
        self.shared.lose_next.lock().unwrap().extend(actions.iter().map(|a| a.to_string()));
    }

    /// Actions given to `lose_next_answer_to` that no request has hit yet.
    pub fn not_yet_lost(&self) -> Vec<String> {
        self.shared.lose_next.lock().unwrap().clone()
    }

    /// Start counting from zero (between the runs of one test).
    pub fn reset_counts(&self) {
        *self.shared.counts.lock().unwrap() = Counts::default();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// One HTTP/1.1 message: the head's lines and the body.
struct Message {
    head: Vec<String>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.iter().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for line in &self.head {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }

    /// The query API's `Action` parameter of a form-encoded request, or the
    /// operation of a JSON-protocol one (`X-Amz-Target: secretsmanager.CreateSecret`).
    fn action(&self) -> Option<String> {
        if let Some(target) = self.header("x-amz-target") {
            return target.rsplit('.').next().map(str::to_string);
        }
        let body = std::str::from_utf8(&self.body).ok()?;
        body.split('&').find_map(|p| p.strip_prefix("Action=")).map(str::to_string)
    }

    /// The AWS service the request is signed for (SigV4 credential scope).
    fn service(&self) -> Option<&str> {
        let auth = self.header("authorization")?;
        let scope = auth.split("Credential=").nth(1)?.split(',').next()?;
        scope.split('/').nth(3)
    }
}

/// Read one message; `Ok(None)` at a clean end of the stream. Bodies are
/// delimited by Content-Length or chunked encoding; an answer with neither
/// runs to the end of the stream (`to_eof`).
fn read_message(r: &mut impl BufRead, to_eof: bool) -> io::Result<Option<Message>> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return if head.is_empty() { Ok(None) } else { Err(io::ErrorKind::UnexpectedEof.into()) };
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            if head.is_empty() {
                continue;
            }
            break;
        }
        head.push(line);
    }
    let mut message = Message { head, body: Vec::new() };
    if let Some(len) = message.header("content-length") {
        let len: usize = len.parse().map_err(|_| io::Error::other("bad content-length"))?;
        message.body = vec![0; len];
        r.read_exact(&mut message.body)?;
    } else if message.header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        // Re-frame as one Content-Length body.
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|_| io::Error::other("bad chunk size"))?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            message.body.extend_from_slice(&chunk[..size]);
        }
        message.head.retain(|l| !l.to_ascii_lowercase().starts_with("transfer-encoding:"));
        message.head.push(format!("Content-Length: {}", message.body.len()));
    } else if to_eof {
        r.read_to_end(&mut message.body)?;
        message.head.push(format!("Content-Length: {}", message.body.len()));
    }
    Ok(Some(message))
}

/// Drop the connection with a TCP reset (SO_LINGER 0), as a failing load
/// balancer or network does, rather than an orderly close.
fn reset(conn: TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on a socket this function owns, with a pointer to
    // a live linger struct and its exact size.
    unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(conn);
}

/// The service's own answer for throttling or an internal error.
fn error_answer(service: &str, throttle: bool) -> Vec<u8> {
    let id = format!("{:08x}-fault-proxy", fastrand::u32(..));
    let (status, body) = match (service, throttle) {
        ("ec2", true) => (
            "503 Service Unavailable",
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>{id}</RequestID></Response>"),
        ),
        ("ec2", false) => (
            "500 Internal Server Error",
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>InternalError</Code><Message>An internal error has occurred</Message></Error></Errors><RequestID>{id}</RequestID></Response>"),
        ),
        (_, true) => (
            "400 Bad Request",
            format!("<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>{id}</RequestId></ErrorResponse>"),
        ),
        (_, false) => (
            "500 Internal Server Error",
            format!("<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>An internal error occurred.</Message></Error><RequestId>{id}</RequestId></ErrorResponse>"),
        ),
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nx-amzn-RequestId: {id}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Send the request to the emulator on a fresh connection; its answer.
fn forward(upstream: SocketAddr, mut request: Message) -> io::Result<Message> {
    request.head.retain(|l| !l.to_ascii_lowercase().starts_with("connection:"));
    request.head.push("Connection: close".into());
    let mut up = TcpStream::connect_timeout(&upstream, Duration::from_secs(5))?;
    up.set_read_timeout(Some(Duration::from_secs(60)))?;
    up.write_all(&request.bytes())?;
    let mut reader = BufReader::new(up);
    let mut answer = read_message(&mut reader, true)?.ok_or_else(|| io::Error::other("no answer upstream"))?;
    // The client's connection stays open: the proxy, not the emulator, decides.
    answer.head.retain(|l| !l.to_ascii_lowercase().starts_with("connection:"));
    Ok(answer)
}

/// Serve one client connection, request after request.
fn serve(shared: &Shared, conn: TcpStream) -> io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut conn = conn;
    while let Some(request) = read_message(&mut reader, false)? {
        let faulted = matches!(request.service(), Some("ec2" | "elasticloadbalancing" | "autoscaling"));
        let mut fault = if faulted { shared.draw() } else { Fault::None };
        if matches!(fault, Fault::None | Fault::Delay(_)) {
            let action = request.action();
            let mut targets = shared.lose_next.lock().unwrap();
            if let Some(i) = targets.iter().position(|t| Some(t.as_str()) == action.as_deref()) {
                targets.remove(i);
                fault = Fault::ResetAfter;
            }
        }
        let service = request.service().unwrap_or_default().to_string();
        {
            let mut c = shared.counts.lock().unwrap();
            c.requests += 1;
            match fault {
                Fault::Throttle => c.throttled += 1,
                Fault::ServerError => c.server_errors += 1,
                Fault::ResetBefore => c.resets_before += 1,
                Fault::ResetAfter => c.resets_after += 1,
                Fault::Delay(_) => c.delayed += 1,
                Fault::None => {}
            }
        }
        match fault {
            Fault::Throttle | Fault::ServerError => {
                conn.write_all(&error_answer(&service, fault == Fault::Throttle))?;
            }
            Fault::ResetBefore => {
                reset(conn);
                return Ok(());
            }
            Fault::ResetAfter => {
                let _executed = forward(shared.upstream, request)?;
                reset(conn);
                return Ok(());
            }
            Fault::Delay(pause) => {
                std::thread::sleep(pause);
                conn.write_all(&forward(shared.upstream, request)?.bytes())?;
            }
            Fault::None => conn.write_all(&forward(shared.upstream, request)?.bytes())?,
        }
    }
    let _ = conn.shutdown(Shutdown::Both);
    Ok(())
}

/// The proxy itself: each fault in its wire shape, the answer lost after
/// forwarding, counts, and a replayable sequence for one seed.
#[test]
fn fault_proxy_answers_like_aws_and_replays_its_seed() {
    use crate::emulator::Emulator;

    let emulator = Emulator::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config_for = |url: String| {
        rt.block_on(async {
            let keys = aws_credential_types::Credentials::new("testing", "testing", None, None, "proxy-test");
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(crate::emulator::REGION))
                .endpoint_url(url)
                .credentials_provider(keys)
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .load()
                .await
        })
    };
    let only = |r: Rates| FaultProxy::start(&emulator.url(), r, 7);
    let none = Rates {
        throttle: 0.0,
        server_error: 0.0,
        reset_before: 0.0,
        reset_after: 0.0,
        delay: 0.0,
        max_delay: Duration::ZERO,
    };

    // Throttling in each service's shape, as the SDK parses it.
    let throttling = only(Rates { throttle: 1.0, ..none });
    let config = config_for(throttling.url());
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let elb = aws_sdk_elasticloadbalancing::Client::new(&config);
    let asg = aws_sdk_autoscaling::Client::new(&config);
    use aws_sdk_ec2::error::ProvideErrorMetadata;
    let e = rt.block_on(ec2.describe_vpcs().send()).unwrap_err();
    assert_eq!(e.code(), Some("RequestLimitExceeded"));
    assert_eq!(e.raw_response().unwrap().status().as_u16(), 503);
    let e = rt.block_on(elb.describe_load_balancers().send()).unwrap_err();
    assert_eq!((e.code(), e.raw_response().unwrap().status().as_u16()), (Some("Throttling"), 400));
    let e = rt.block_on(asg.describe_auto_scaling_groups().send()).unwrap_err();
    assert_eq!((e.code(), e.raw_response().unwrap().status().as_u16()), (Some("Throttling"), 400));
    assert_eq!(throttling.counts(), Counts { requests: 3, throttled: 3, ..Counts::default() });

    let failing = only(Rates { server_error: 1.0, ..none });
    let e = rt.block_on(aws_sdk_ec2::Client::new(&config_for(failing.url())).describe_vpcs().send()).unwrap_err();
    assert_eq!((e.code(), e.raw_response().unwrap().status().as_u16()), (Some("InternalError"), 500));

    // A reset before forwarding: no answer, nothing done. After: no answer, done.
    let direct = aws_sdk_ec2::Client::new(&config_for(emulator.url()));
    let vpcs = || rt.block_on(direct.describe_vpcs().send()).unwrap().vpcs().len();
    let before = vpcs();
    let lost_early = only(Rates { reset_before: 1.0, ..none });
    let e = rt.block_on(
        aws_sdk_ec2::Client::new(&config_for(lost_early.url())).create_vpc().cidr_block("10.1.0.0/16").send(),
    );
    assert!(e.as_ref().unwrap_err().raw_response().is_none(), "no answer: {e:?}");
    assert_eq!(vpcs(), before, "not forwarded");
    let lost_late = only(Rates { reset_after: 1.0, ..none });
    let e = rt
        .block_on(aws_sdk_ec2::Client::new(&config_for(lost_late.url())).create_vpc().cidr_block("10.2.0.0/16").send());
    assert!(e.as_ref().unwrap_err().raw_response().is_none(), "no answer: {e:?}");
    assert_eq!(vpcs(), before + 1, "the emulator made the VPC; the answer was lost");

    // Passing through, with delays.
    let slow = only(Rates { delay: 1.0, max_delay: Duration::from_millis(50), ..none });
    let out = rt.block_on(aws_sdk_ec2::Client::new(&config_for(slow.url())).describe_vpcs().send()).unwrap();
    assert_eq!(out.vpcs().len(), before + 1);
    assert_eq!(slow.counts().delayed, 1);

    // One seed, one sequence of faults.
    let mixed = Rates {
        throttle: 0.1,
        server_error: 0.1,
        reset_before: 0.1,
        reset_after: 0.1,
        delay: 0.2,
        max_delay: Duration::from_millis(5),
    };
    let sequence = |seed: u64| {
        let p = FaultProxy::start(&emulator.url(), mixed, seed);
        (0..40).map(|_| p.shared.draw()).collect::<Vec<_>>()
    };
    assert_eq!(sequence(42), sequence(42));
    assert_ne!(sequence(42), sequence(43));
}
