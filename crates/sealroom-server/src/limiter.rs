//! Per-principal limits: a request rate (token bucket) and a number of requests in flight, so
//! one user flooding the server cannot starve the others. Keyed by the principal's room id
//! (never the subject); the set of tracked principals is bounded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sealroom::room_id::RoomId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Principals whose buckets are remembered; an evicted idle principal starts with a full bucket.
const TRACKED_PRINCIPALS_MAX: u64 = 100_000;

/// The limits, each configurable.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrincipalLimits {
    /// Sustained requests per second per principal.
    pub requests_per_sec: f64,
    /// Requests a principal may send at once above the sustained rate.
    pub burst: f64,
    /// Requests of one principal handled at the same time.
    pub in_flight_max: usize,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Why a request was refused, and when to retry.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    pub retry_after: Duration,
}

/// A request that was admitted; holding it holds the principal's in-flight slot.
#[derive(Debug)]
pub struct Admission {
    _permit: OwnedSemaphorePermit,
}

/// The limiter, keyed by principal (their room id in the server).
pub struct Limiter<K = RoomId> {
    limits: PrincipalLimits,
    buckets: moka::sync::Cache<K, Arc<Mutex<Bucket>>>,
    in_flight: moka::sync::Cache<K, Arc<Semaphore>>,
}

impl<K> std::fmt::Debug for Limiter<K> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Limiter({:?})", self.limits)
    }
}

impl<K: std::hash::Hash + Eq + Clone + Send + Sync + 'static> Limiter<K> {
    pub fn new(limits: PrincipalLimits) -> Limiter<K> {
        assert!(limits.requests_per_sec > 0.0 && limits.burst >= 1.0 && limits.in_flight_max >= 1);
        let idle = Duration::from_secs_f64((limits.burst / limits.requests_per_sec).max(1.0) * 4.0);
        Limiter {
            limits,
            buckets: moka::sync::Cache::builder().max_capacity(TRACKED_PRINCIPALS_MAX).time_to_idle(idle).build(),
            in_flight: moka::sync::Cache::builder()
                .max_capacity(TRACKED_PRINCIPALS_MAX)
                .time_to_idle(Duration::from_secs(600))
                .build(),
        }
    }

    /// Admits one request of the principal whose room is `room`, or says when to retry.
    pub fn admit(&self, principal: &K) -> Result<Admission, Refusal> {
        let bucket = self.buckets.get_with(principal.clone(), || {
            Arc::new(Mutex::new(Bucket { tokens: self.limits.burst, updated: Instant::now() }))
        });
        {
            let mut bucket = bucket.lock().expect("bucket lock");
            let now = Instant::now();
            let refill = now.duration_since(bucket.updated).as_secs_f64() * self.limits.requests_per_sec;
            bucket.tokens = (bucket.tokens + refill).min(self.limits.burst);
            bucket.updated = now;
            if bucket.tokens < 1.0 {
                let wait = (1.0 - bucket.tokens) / self.limits.requests_per_sec;
                return Err(Refusal { retry_after: Duration::from_secs_f64(wait) });
            }
            bucket.tokens -= 1.0;
        }
        let semaphore =
            self.in_flight.get_with(principal.clone(), || Arc::new(Semaphore::new(self.limits.in_flight_max)));
        semaphore
            .try_acquire_owned()
            .map(|permit| Admission { _permit: permit })
            .map_err(|_| Refusal { retry_after: Duration::from_secs(1) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_the_rate() {
        let limiter: Limiter<u64> =
            Limiter::new(PrincipalLimits { requests_per_sec: 10.0, burst: 5.0, in_flight_max: 100 });
        let room = 7u64;
        let admitted: Vec<_> = (0..5).map(|_| limiter.admit(&room).expect("within the burst")).collect();
        assert!(limiter.admit(&room).is_err(), "the burst is spent");
        std::thread::sleep(Duration::from_millis(120));
        assert!(limiter.admit(&room).is_ok(), "the rate refills");
        drop(admitted);
    }

    #[test]
    fn in_flight_requests_are_bounded_per_principal() {
        let limiter: Limiter<u64> =
            Limiter::new(PrincipalLimits { requests_per_sec: 1000.0, burst: 1000.0, in_flight_max: 2 });
        let room = 7u64;
        let first = limiter.admit(&room).expect("first");
        let _second = limiter.admit(&room).expect("second");
        assert!(limiter.admit(&room).is_err());
        drop(first);
        assert!(limiter.admit(&room).is_ok());
    }
}
