//! Busy-polling policy, the same on both sides of a lane.
//!
//! Polling instead of sleeping saves a ~100 µs wake-up per reply on small
//! VMs (a loopback round trip is ~20 µs), but every poller holds a core. So
//! a transfer polls without blocking only while bytes keep coming, for at
//! most the spin window since the last progress, and only if it holds a
//! [`SpinSlot`]: at most half the cores (at least one) of the process poll
//! at once; the other lanes park in the kernel, so many busy lanes on a
//! small machine do not starve each other or the peer.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The spin window when none is configured.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(100);
/// The initiator's spin window variable, in microseconds (0 disables).
pub const INITIATOR_SPIN_VAR: &str = "RPMEM_SPIN_US";
/// The target's spin window variable, in microseconds (0 disables).
pub const TARGET_SPIN_VAR: &str = "RPMEMD_SPIN_US";

/// The spin window set by the environment variable `var` (microseconds;
/// 0 disables spinning), or [`DEFAULT_SPIN`] when it is unset or not a number.
pub fn window_from_env(var: &str) -> Duration {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_SPIN, Duration::from_micros)
}

/// Longest extra polling a transfer adds to the spin window.
pub const MAX_TRANSFER_SPIN: Duration = Duration::from_millis(20);

/// The polling window for a wait that belongs to a transfer of `bytes`:
/// the configured `spin` plus a nanosecond per byte (the time those bytes
/// take at ~1 GB/s), at most [`MAX_TRANSFER_SPIN`] more. A receiver in the
/// middle of a large payload, or a sender waiting for the answer to one,
/// then does not go to sleep (and pay a wake-up) because the peer was off
/// the CPU for a moment. Polling stays off when `spin` is zero, and stays
/// tied to activity: no transfer, no extension.
pub fn transfer_window(spin: Duration, bytes: u64) -> Duration {
    if spin.is_zero() {
        return spin;
    }
    spin + Duration::from_nanos(bytes).min(MAX_TRANSFER_SPIN)
}

static SPINNERS: AtomicUsize = AtomicUsize::new(0);

fn max_spinners() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)))
}

/// A permission to busy-poll, given back on drop or by [`SpinSlot::release`].
#[derive(Debug)]
pub struct SpinSlot(bool);

impl SpinSlot {
    /// Takes a slot if one is free; otherwise the holder must not spin.
    pub fn acquire() -> SpinSlot {
        if SPINNERS.fetch_add(1, Ordering::AcqRel) < max_spinners() {
            SpinSlot(true)
        } else {
            SPINNERS.fetch_sub(1, Ordering::AcqRel);
            SpinSlot(false)
        }
    }

    /// `window` if the slot is held, else zero.
    pub fn window(&self, window: Duration) -> Duration {
        if self.0 {
            window
        } else {
            Duration::ZERO
        }
    }

    /// Gives the slot back early (the holder is about to block).
    pub fn release(&mut self) {
        if std::mem::take(&mut self.0) {
            SPINNERS.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for SpinSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// Moves `total` bytes with `step`, polling while bytes keep coming and
/// blocking only after `window` without progress (or at once without a
/// spin slot).
///
/// `step(done, nonblocking)` moves bytes from position `done` on and
/// returns how many it moved; with `nonblocking` it must not wait
/// (`MSG_DONTWAIT`) and may fail with `WouldBlock`. Returning 0 means end
/// of stream. Returns the bytes moved: less than `total` only at end of
/// stream. `WouldBlock` from a blocking step (a socket time limit) and any
/// other error are returned as they are; `Interrupted` is retried.
pub fn poll_then_block(
    window: Duration,
    total: usize,
    mut step: impl FnMut(usize, bool) -> io::Result<usize>,
) -> io::Result<usize> {
    let mut slot = SpinSlot::acquire();
    let window = slot.window(window);
    let mut done = 0;
    let mut last_progress = Instant::now();
    while done < total {
        let spinning = !window.is_zero() && last_progress.elapsed() < window;
        if !spinning {
            slot.release();
        }
        match step(done, spinning) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                if spinning {
                    last_progress = Instant::now();
                }
            }
            Err(e) => match e.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock if spinning => std::hint::spin_loop(),
                _ => return Err(e),
            },
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_returned() {
        let held: Vec<SpinSlot> = (0..max_spinners() + 3)
            .map(|_| SpinSlot::acquire())
            .collect();
        let spinning = held
            .iter()
            .filter(|s| !s.window(Duration::from_micros(1)).is_zero());
        assert!(spinning.count() <= max_spinners());
        drop(held);
        let mut s = SpinSlot::acquire();
        assert!(!s.window(Duration::from_micros(1)).is_zero());
        s.release();
        assert!(s.window(Duration::from_micros(1)).is_zero());
        drop(s);
        // In the same test: the polling below needs a free slot.
        polls_then_blocks_and_stops_at_end_of_stream();
    }

    fn polls_then_blocks_and_stops_at_end_of_stream() {
        // Two would-blocks while polling, then data, then a blocking step
        // once the window is over, then end of stream.
        let mut calls = Vec::new();
        let mut script = vec![
            Err(io::ErrorKind::WouldBlock.into()),
            Err(io::ErrorKind::Interrupted.into()),
            Ok(3),
            Ok(0),
        ]
        .into_iter();
        let n = poll_then_block(Duration::from_secs(60), 10, |done, nb| {
            calls.push((done, nb));
            script.next().unwrap()
        })
        .unwrap();
        assert_eq!(n, 3);
        assert_eq!(calls.len(), 4);
        assert!(calls[..3].iter().all(|&(_, nb)| nb));
        assert_eq!(calls[3].0, 3);
        // Without a window every step blocks, and a time limit is an error.
        let e = poll_then_block(Duration::ZERO, 1, |_, nb| {
            assert!(!nb);
            Err(io::ErrorKind::WouldBlock.into())
        })
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn the_transfer_window_grows_with_the_transfer_and_stays_bounded() {
        let spin = Duration::from_micros(100);
        assert_eq!(transfer_window(spin, 0), spin);
        assert_eq!(
            transfer_window(spin, 1 << 20),
            spin + Duration::from_nanos(1 << 20)
        );
        assert_eq!(transfer_window(spin, u64::MAX), spin + MAX_TRANSFER_SPIN);
        // Polling switched off stays off.
        assert_eq!(transfer_window(Duration::ZERO, 1 << 20), Duration::ZERO);
    }

    #[test]
    fn window_comes_from_the_variable() {
        let var = "SPIN_POLICY_TEST_US";
        assert_eq!(window_from_env(var), DEFAULT_SPIN);
        std::env::set_var(var, " 7 ");
        assert_eq!(window_from_env(var), Duration::from_micros(7));
        std::env::set_var(var, "x");
        assert_eq!(window_from_env(var), DEFAULT_SPIN);
        std::env::remove_var(var);
    }
}
