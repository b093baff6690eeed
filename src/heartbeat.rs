//! The heartbeat of a run: which operations are running since when, and a
//! thread that gives each one silent for too long a "still running" line
//! (Terraform's "Still creating... [10s elapsed]"). Shared by the human
//! progress (`ui.rs`) and the JSON event stream (`events.rs`), which both
//! depend on it and not on each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skyplan_engine::apply::{Event, OpKind};
use skyplan_engine::Address;

/// How often, at least, a running operation gets a progress line when
/// stdout is not a terminal (Terraform's "Still creating... [10s elapsed]").
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// A running operation, for the heartbeat: when it started and when it
/// last had a line.
struct Running {
    op: OpKind,
    started: Instant,
    last: Instant,
}

/// The operations running now. A thread gives each one silent for the
/// heartbeat interval a line; it ends once the last handle is dropped.
#[derive(Clone)]
pub struct Heartbeat {
    running: Arc<Mutex<HashMap<Address, Running>>>,
}

pub type StillRunning = Arc<dyn Fn(&Address, OpKind, Duration) + Send + Sync>;

impl Heartbeat {
    pub fn start(every: Duration, still: StillRunning) -> Heartbeat {
        let running: Arc<Mutex<HashMap<Address, Running>>> = Arc::default();
        let weak = Arc::downgrade(&running);
        let tick = (every / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        std::thread::spawn(move || loop {
            std::thread::sleep(tick);
            let Some(running) = weak.upgrade() else { return };
            let now = Instant::now();
            let due: Vec<(Address, OpKind, Duration)> = running
                .lock()
                .expect("running operations")
                .iter_mut()
                .filter(|(_, r)| now.duration_since(r.last) >= every)
                .map(|(a, r)| {
                    r.last = now;
                    (a.clone(), r.op, now.duration_since(r.started))
                })
                .collect();
            drop(running);
            for (address, op, elapsed) in due {
                still(&address, op, elapsed);
            }
        });
        Heartbeat { running }
    }

    /// Follow one apply event: a start adds the operation, a line about it
    /// resets its clock, an end removes it.
    pub fn track(&self, event: &Event) {
        let mut running = self.running.lock().expect("running operations");
        let now = Instant::now();
        match event {
            Event::Started { address, op, .. } => {
                running.insert(address.clone(), Running { op: *op, started: now, last: now });
            }
            Event::Progress { address, .. } => {
                if let Some(r) = running.get_mut(address) {
                    r.last = now;
                }
            }
            Event::Finished { address, .. } | Event::Failed { address, .. } | Event::Skipped { address, .. } => {
                running.remove(address);
            }
        }
    }
}

/// A duration as a progress line shows it: whole seconds, or tenths below one.
pub fn secs(d: Duration) -> String {
    if d.as_secs() >= 1 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
