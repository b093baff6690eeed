//! [`S3Backend`]: skyplan's state in an S3 object, for teams and pipelines
//! whose runs happen on many machines (`--state s3://BUCKET/KEY`).
//!
//! Three objects sit side by side, like the local backend's three files:
//!
//! - `KEY`: the state, replaced whole by each save (a PUT is atomic: a
//!   reader sees the old object or the new one, never a mixture);
//! - `KEY.backup`: the state as it was before this run, copied just before
//!   the run's first save;
//! - `KEY.lock`: the lock, created with a conditional write
//!   (`If-None-Match: *`), so of two runners racing for it exactly one
//!   succeeds and the other gets 412 Precondition Failed. It holds the
//!   [`LockInfo`] and is deleted only with a matching ETag.
//!
//! The [`Backend`] trait is blocking and the SDK is async: the backend owns
//! a small runtime and runs each call to completion on it. Nothing here is
//! about what the state means.

use std::future::Future;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use skyplan_state::{parse_state, Backend, LockInfo, State, StateError};

/// An object's bytes and its ETag.
type Object = (Vec<u8>, Option<String>);

/// The lock object: its content as a lock (or why it is not one), and its ETag.
type HeldLock = (Result<LockInfo, String>, Option<String>);

/// How often a waiting `lock` tries again.
const LOCK_POLL: Duration = Duration::from_millis(500);

/// State kept in `s3://BUCKET/KEY`.
pub struct S3Backend {
    bucket: String,
    key: String,
    client: Client,
    runtime: Option<tokio::runtime::Runtime>,
    /// Whether this run has saved before (and so has written `.backup`).
    persisted: std::sync::Mutex<bool>,
}

/// Split `s3://BUCKET/KEY` into bucket and key.
pub fn parse_url(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| format!("{url} is not an s3://BUCKET/KEY URL"))?;
    let (bucket, key) = rest.split_once('/').ok_or_else(|| format!("{url} names no key: use s3://BUCKET/KEY"))?;
    if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
        return Err(format!("{url} must name a bucket and an object key: s3://BUCKET/KEY"));
    }
    Ok((bucket.to_string(), key.to_string()))
}

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// The S3 error code and message of a failed call, for messages.
fn describe<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> String {
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            format!("{}: {}", err.code().unwrap_or("error"), err.message().unwrap_or("no message"))
        }
        other => format!("{other}"),
    }
}

fn status<E, R: HttpStatus>(e: &SdkError<E, R>) -> Option<u16> {
    e.raw_response().map(HttpStatus::code)
}

trait HttpStatus {
    fn code(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn code(&self) -> u16 {
        self.status().as_u16()
    }
}

impl S3Backend {
    /// A backend for `s3://BUCKET/KEY`, with credentials and region from the
    /// SDK's default chain (`region` when given wins). Honours
    /// `AWS_ENDPOINT_URL` and then addresses buckets by path, as local S3
    /// emulators need. Makes no call until used.
    pub fn new(url: &str, region: Option<String>) -> Result<S3Backend, String> {
        let (bucket, key) = parse_url(url)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("skyplan-s3-state")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the S3 client runtime: {e}"))?;
        let endpoint_override =
            std::env::var_os("AWS_ENDPOINT_URL").is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let config = run_on(&runtime, async move {
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
            if let Some(region) = region {
                loader = loader.region(aws_config::Region::new(region));
            }
            loader.load().await
        });
        let s3_config = aws_sdk_s3::config::Builder::from(&config).force_path_style(endpoint_override).build();
        Ok(S3Backend {
            bucket,
            key,
            client: Client::from_conf(s3_config),
            runtime: Some(runtime),
            persisted: std::sync::Mutex::new(false),
        })
    }

    fn url(&self, suffix: &str) -> PathBuf {
        PathBuf::from(format!("s3://{}/{}{suffix}", self.bucket, self.key))
    }

    fn object(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.key)
    }

    fn block<T: Send>(&self, fut: impl Future<Output = T> + Send) -> T {
        run_on(self.runtime.as_ref().expect("runtime lives as long as the backend"), fut)
    }

    /// The object's bytes and ETag, or None when it does not exist.
    fn get(&self, suffix: &str) -> Result<Option<Object>, String> {
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.object(suffix));
        self.block(async move {
            match client.get_object().bucket(bucket).key(key).send().await {
                Ok(out) => {
                    let etag = out.e_tag().map(str::to_string);
                    let bytes = out.body.collect().await.map_err(|e| e.to_string())?.into_bytes().to_vec();
                    Ok(Some((bytes, etag)))
                }
                Err(e) if status(&e) == Some(404) => Ok(None),
                Err(e) => Err(describe(&e)),
            }
        })
    }

    /// PUT the object; with `only_if_absent`, `Ok(false)` when it exists.
    fn put(&self, suffix: &str, bytes: Vec<u8>, only_if_absent: bool) -> Result<bool, String> {
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.object(suffix));
        self.block(async move {
            let mut request = client.put_object().bucket(bucket).key(key).body(ByteStream::from(bytes));
            if only_if_absent {
                request = request.if_none_match("*");
            }
            match request.send().await {
                Ok(_) => Ok(true),
                Err(e) if only_if_absent && matches!(status(&e), Some(412 | 409)) => Ok(false),
                Err(e) => Err(describe(&e)),
            }
        })
    }

    fn read_lock(&self) -> Result<Option<HeldLock>, StateError> {
        let lock_io = |e: String| StateError::LockIo { path: self.url(".lock"), cause: io_error(e) };
        Ok(self
            .get(".lock")
            .map_err(lock_io)?
            .map(|(bytes, etag)| (serde_json::from_slice::<LockInfo>(&bytes).map_err(|e| e.to_string()), etag)))
    }
}

/// Run a future to completion on `runtime`, from any thread: inside another
/// runtime's task (the CLI) it blocks a scoped helper thread rather than the
/// caller's runtime, which tokio forbids.
fn run_on<T: Send>(runtime: &tokio::runtime::Runtime, fut: impl Future<Output = T> + Send) -> T {
    if tokio::runtime::Handle::try_current().is_ok() {
        thread::scope(|s| s.spawn(|| runtime.block_on(fut)).join().expect("S3 call thread panicked"))
    } else {
        runtime.block_on(fut)
    }
}

impl Drop for S3Backend {
    fn drop(&mut self) {
        // Dropping a runtime inside another's task would panic.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Backend for S3Backend {
    fn describe(&self) -> String {
        format!("S3 object s3://{}/{}", self.bucket, self.key)
    }

    fn load(&self) -> Result<Option<State>, StateError> {
        let Some((bytes, _)) = self.get("").map_err(|e| StateError::Read { path: self.url(""), cause: io_error(e) })?
        else {
            return Ok(None);
        };
        parse_state(&self.url(""), &self.url(".backup"), &bytes).map(Some)
    }

    fn persist(&self, state: &State) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(state).map_err(StateError::Encode)?;
        bytes.push(b'\n');
        let mut persisted = self.persisted.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*persisted {
            let backup_error = |e: String| StateError::Backup { path: self.url(".backup"), cause: io_error(e) };
            if let Some((previous, _)) = self.get("").map_err(backup_error)? {
                self.put(".backup", previous, false).map_err(backup_error)?;
            }
            *persisted = true;
        }
        self.put("", bytes, false).map_err(|e| StateError::Write { path: self.url(""), cause: io_error(e) })?;
        Ok(())
    }

    fn lock(&self, info: &LockInfo, timeout: Duration) -> Result<(), StateError> {
        let lock_io = |e: String| StateError::LockIo { path: self.url(".lock"), cause: io_error(e) };
        let mut json = serde_json::to_vec_pretty(info).map_err(StateError::Encode)?;
        json.push(b'\n');
        let deadline = Instant::now() + timeout;
        loop {
            if self.put(".lock", json.clone(), true).map_err(lock_io)? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return match self.read_lock()? {
                    Some((Ok(held), _)) => Err(StateError::Locked(held)),
                    Some((Err(detail), _)) => Err(StateError::LockUnreadable { path: self.url(".lock"), detail }),
                    // Released between our write and our read: try again.
                    None => continue,
                };
            }
            thread::sleep(LOCK_POLL.min(deadline.saturating_duration_since(Instant::now())));
        }
    }

    fn unlock(&self, lock_id: &str) -> Result<(), StateError> {
        self.unlock_between(lock_id, || {})
    }

    fn current_lock(&self) -> Result<Option<LockInfo>, StateError> {
        match self.read_lock()? {
            None => Ok(None),
            Some((Ok(info), _)) => Ok(Some(info)),
            Some((Err(detail), _)) => Err(StateError::LockUnreadable { path: self.url(".lock"), detail }),
        }
    }
}

impl S3Backend {
    /// [`Backend::unlock`], with `between` run after the lock is read and
    /// before it is deleted: the window in which another run may release
    /// it and take it again (tests make that happen there).
    fn unlock_between(&self, lock_id: &str, between: impl FnOnce()) -> Result<(), StateError> {
        let (held, etag) = match self.read_lock()? {
            None => return Err(StateError::NotLocked { state: self.describe() }),
            Some((Err(detail), _)) => return Err(StateError::LockUnreadable { path: self.url(".lock"), detail }),
            Some((Ok(held), etag)) => (held, etag),
        };
        if held.id != lock_id {
            return Err(StateError::LockMismatch { requested: lock_id.to_string(), held: Box::new(held) });
        }
        between();
        // Delete only the lock we read: if it was released and taken by
        // another run in between, its ETag differs and nothing is deleted.
        let Some(etag) = etag else {
            return Err(StateError::LockIo {
                path: self.url(".lock"),
                cause: io_error(
                    "S3 answered the lock without an ETag, so it cannot be released safely; nothing was deleted",
                ),
            });
        };
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.object(".lock"));
        let result = self.block(async move {
            client
                .delete_object()
                .bucket(bucket)
                .key(key)
                .if_match(etag)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| (status(&e), describe(&e)))
        });
        match result {
            Ok(()) => Ok(()),
            // Released by another run in between: there is nothing to release.
            Err((Some(404), _)) => Err(StateError::NotLocked { state: self.describe() }),
            Err((Some(412), _)) => Err(StateError::LockIo {
                path: self.url(".lock"),
                cause: io_error("the lock changed while it was being released; nothing was deleted"),
            }),
            Err((_, e)) => Err(StateError::LockIo { path: self.url(".lock"), cause: io_error(e) }),
        }
    }
}

#[cfg(test)]
mod conformance_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_key() {
        assert_eq!(parse_url("s3://b/k").unwrap(), ("b".into(), "k".into()));
        assert_eq!(parse_url("s3://team-state/clusters/demo.state.json").unwrap().1, "clusters/demo.state.json");
        for bad in ["b/k", "s3://", "s3://b", "s3://b/", "s3:///k", "s3://b/dir/"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
