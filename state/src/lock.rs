//! [`LockInfo`]: the record of who holds a state lock (stored as JSON in
//! the lock, shown in every "state is locked" error). Taking and releasing
//! a lock is each backend's business ([`crate::Backend::lock`]); this module
//! only says who and since when.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::model::random_id;

/// Who holds a state lock, and since when. Stored as JSON in the lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Random id; `skyplan unlock ID` needs it.
    pub id: String,
    /// `user@host` of the process that took the lock.
    pub holder: String,
    /// Process id of that process.
    pub pid: u32,
    /// What it was doing: `apply`, `destroy`, `state rm`, ...
    pub operation: String,
    /// When the lock was taken, RFC 3339 in UTC (`2026-03-01T12:00:00Z`).
    pub created: String,
}

impl LockInfo {
    /// A lock record for `operation` by this process: a fresh random id,
    /// `user@host` (from `USER`/`LOGNAME` and `HOSTNAME` or `/etc/hostname`),
    /// this pid, and the current time.
    pub fn new(operation: &str) -> LockInfo {
        LockInfo {
            id: random_id(),
            holder: format!("{}@{}", user_name(), host_name()),
            pid: std::process::id(),
            operation: operation.to_string(),
            created: rfc3339_utc(SystemTime::now()),
        }
    }
}

fn user_name() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

fn host_name() -> String {
    let from_env = std::env::var("HOSTNAME").ok();
    let from_files = || {
        ["/etc/hostname", "/proc/sys/kernel/hostname"]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|v| v.trim().to_string())
            .find(|v| !v.is_empty())
    };
    from_env
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .or_else(from_files)
        .unwrap_or_else(|| "unknown-host".to_string())
}

/// Formats `time` as RFC 3339 in UTC with second precision.
fn rfc3339_utc(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        let at = |s: u64| rfc3339_utc(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(at(1_772_366_400), "2026-03-01T12:00:00Z");
    }

    #[test]
    fn lock_info_names_this_process() {
        let a = LockInfo::new("apply");
        let b = LockInfo::new("apply");
        assert_ne!(a.id, b.id);
        assert_eq!(a.pid, std::process::id());
        assert_eq!(a.operation, "apply");
        assert!(a.holder.contains('@'), "{}", a.holder);
        assert!(a.created.ends_with('Z') && a.created.len() == 20, "{}", a.created);
    }
}
