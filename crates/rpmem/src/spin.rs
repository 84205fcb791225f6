//! How many lanes may busy-poll at once.
//!
//! Polling instead of sleeping saves a ~100 µs wake-up per reply, but every
//! poller holds a core. At most half the cores (at least one) poll at a time;
//! the other lanes park in the kernel, so many busy lanes on a small machine
//! do not starve each other or the daemon.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

static SPINNERS: AtomicUsize = AtomicUsize::new(0);

fn max_spinners() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)))
}

/// A permission to busy-poll, given back on drop.
pub(crate) struct SpinSlot(bool);

impl SpinSlot {
    /// Takes a slot if one is free; otherwise the holder must not spin.
    pub(crate) fn acquire() -> SpinSlot {
        if SPINNERS.fetch_add(1, Ordering::AcqRel) < max_spinners() {
            SpinSlot(true)
        } else {
            SPINNERS.fetch_sub(1, Ordering::AcqRel);
            SpinSlot(false)
        }
    }

    /// `window` if the slot is held, else zero.
    pub(crate) fn window(&self, window: Duration) -> Duration {
        if self.0 {
            window
        } else {
            Duration::ZERO
        }
    }
}

impl Drop for SpinSlot {
    fn drop(&mut self) {
        if self.0 {
            SPINNERS.fetch_sub(1, Ordering::AcqRel);
        }
    }
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
        assert!(!SpinSlot::acquire()
            .window(Duration::from_micros(1))
            .is_zero());
    }
}
