//! CPU time of both sides: this process, and (for a target on this machine)
//! every process descended from it — the daemons and the raw floor's server,
//! started through the local launcher.

use std::collections::HashMap;
use std::time::Duration;

use nix::time::{clock_getcpuclockid, clock_gettime, ClockId};
use nix::unistd::Pid;

/// CPU time used so far by each side.
#[derive(Debug, Clone, Default)]
pub(super) struct Reading {
    client: Duration,
    /// Per descendant process; `None` when the target is not on this machine.
    target: Option<HashMap<i32, Duration>>,
}

/// CPU time used between two readings.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Used {
    pub(super) client: Duration,
    pub(super) target: Option<Duration>,
}

fn process_cpu(pid: Option<Pid>) -> Option<Duration> {
    let clock = match pid {
        None => ClockId::CLOCK_PROCESS_CPUTIME_ID,
        Some(p) => clock_getcpuclockid(p).ok()?,
    };
    clock_gettime(clock).ok().map(Duration::from)
}

/// Parent of `pid`, from /proc/PID/stat (the field after the command name,
/// which may itself hold spaces and parentheses).
fn parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn descendants() -> Vec<i32> {
    let me = std::process::id() as i32;
    let parents: HashMap<i32, i32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, parent(pid)?)))
        .collect();
    let mut out = Vec::new();
    for &pid in parents.keys() {
        let mut p = pid;
        // Bounded walk: a pid loop cannot happen, but a racing reuse could.
        for _ in 0..64 {
            match parents.get(&p) {
                Some(&pp) if pp == me => {
                    out.push(pid);
                    break;
                }
                Some(&pp) if pp > 1 => p = pp,
                _ => break,
            }
        }
    }
    out
}

fn target_cpu(local: bool) -> Option<HashMap<i32, Duration>> {
    local.then(|| {
        descendants()
            .into_iter()
            .filter_map(|pid| Some((pid, process_cpu(Some(Pid::from_raw(pid)))?)))
            .collect()
    })
}

fn client_cpu() -> Duration {
    process_cpu(None).unwrap_or_default()
}

/// Reads both sides' CPU time at the start of a phase (the target's only
/// when `local`); this process's clock last, so the scan of /proc is not
/// counted.
pub(super) fn start(local: bool) -> Reading {
    let target = target_cpu(local);
    Reading {
        client: client_cpu(),
        target,
    }
}

/// Reads both sides' CPU time at the end of a phase; this process's clock
/// first.
pub(super) fn end(local: bool) -> Reading {
    let client = client_cpu();
    Reading {
        client,
        target: target_cpu(local),
    }
}

impl Reading {
    /// What was used from `self` until `later`. A process that appeared in
    /// between counts from zero; one that ended is lost (the phases keep
    /// their processes).
    pub(super) fn until(&self, later: &Reading) -> Used {
        let target = match (&self.target, &later.target) {
            (Some(a), Some(b)) => Some(
                b.iter()
                    .map(|(pid, t)| t.saturating_sub(a.get(pid).copied().unwrap_or_default()))
                    .sum(),
            ),
            _ => None,
        };
        Used {
            client: later.client.saturating_sub(self.client),
            target,
        }
    }
}

/// Load average over 1, 5 and 15 minutes, where the system tells it.
pub(super) fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut w = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([w.next()??, w.next()??, w.next()??])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_child_shows_up_as_target_cpu() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("sh");
        std::thread::sleep(Duration::from_millis(20));
        let a = start(true);
        std::thread::sleep(Duration::from_millis(200));
        let b = end(true);
        let _ = child.kill();
        let _ = child.wait();
        let used = a.until(&b);
        let t = used.target.expect("local target reading");
        assert!(t >= Duration::from_millis(20), "child used {t:?}");
        assert!(start(false).target.is_none());
        let l = load_average().expect("/proc/loadavg");
        assert!(l.iter().all(|v| *v >= 0.0));
    }
}
