//! The global budget of request-body bytes held in memory.
//!
//! Every request body is reserved from one [`ByteBudget`] before it is read: the
//! declared `Content-Length` at once, a chunked body chunk by chunk, and a gunzipped
//! copy as it grows. A reservation that cannot be had is answered `503` with
//! `Retry-After` (see [`super::service`]), so however many clients send bodies at once,
//! the bodies in memory never exceed the budget. A [`Reservation`] gives its bytes
//! back when it is dropped, which the HTTP layer does once the request's buffers are
//! freed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A fixed number of bytes shared by all requests in flight.
#[derive(Debug)]
pub struct ByteBudget {
    limit: usize,
    used: AtomicUsize,
}

impl ByteBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<ByteBudget> {
        Arc::new(ByteBudget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// The budget in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes reserved right now.
    pub fn in_use(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Takes `bytes` from the budget if that many are free; never waits.
    pub fn try_reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        self.take(bytes).then(|| Reservation {
            budget: Arc::clone(self),
            bytes,
        })
    }

    /// An empty reservation, to grow later with [`Reservation::try_grow`].
    pub fn empty(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: Arc::clone(self),
            bytes: 0,
        }
    }

    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }
}

/// Bytes taken from a [`ByteBudget`]; given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<ByteBudget>,
    bytes: usize,
}

impl Reservation {
    /// Takes `more` bytes for this reservation if they are free; never waits.
    pub fn try_grow(&mut self, more: usize) -> bool {
        let ok = self.budget.take(more);
        if ok {
            self.bytes += more;
        }
        ok
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_exceed_the_budget() {
        let budget = ByteBudget::new(100);
        let a = budget.try_reserve(60).expect("fits");
        assert!(budget.try_reserve(41).is_none());
        let mut b = budget.try_reserve(40).expect("fits exactly");
        assert_eq!(budget.in_use(), 100);
        assert!(!b.try_grow(1));
        assert_eq!(b.bytes(), 40);
        drop(a);
        assert_eq!(budget.in_use(), 40);
        assert!(b.try_grow(60));
        assert_eq!(b.bytes(), 100);
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn huge_requests_do_not_overflow() {
        let budget = ByteBudget::new(usize::MAX - 1);
        let _a = budget.try_reserve(usize::MAX - 10).expect("fits");
        assert!(budget.try_reserve(usize::MAX).is_none());
        let mut e = budget.empty();
        assert!(!e.try_grow(100));
        assert!(e.try_grow(9));
    }

    #[test]
    fn concurrent_reservations_are_exact() {
        let budget = ByteBudget::new(1000);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let budget = Arc::clone(&budget);
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for _ in 0..10_000 {
                        if let Some(r) = budget.try_reserve(7) {
                            assert!(budget.in_use() <= 1000);
                            held.push(r);
                        }
                        if held.len() > 20 {
                            held.clear();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("no panic");
        }
        assert_eq!(budget.in_use(), 0);
    }
}
