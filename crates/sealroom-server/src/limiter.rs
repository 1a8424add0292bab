//! Per-principal limits: a request rate (token bucket) and a number of requests in flight, so
//! one user flooding the server cannot starve the others. Keyed by the principal's room id
//! (never the subject); the set of tracked principals is bounded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::limits::{LIMITER_TRACKED_IDLE_SECS, LIMITER_TRACKED_PRINCIPALS_MAX};
use sealroom::room_id::RoomId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use crate::config::PrincipalLimits;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// One principal's state: the token bucket and the in-flight slots.
struct Tracked {
    bucket: Mutex<Bucket>,
    in_flight: Arc<Semaphore>,
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
    tracked: moka::sync::Cache<K, Arc<Tracked>>,
}

impl<K> std::fmt::Debug for Limiter<K> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Limiter({:?})", self.limits)
    }
}

impl<K: std::hash::Hash + Eq + Clone + Send + Sync + 'static> Limiter<K> {
    pub fn new(limits: PrincipalLimits) -> Limiter<K> {
        assert!(limits.requests_per_sec > 0.0 && limits.burst >= 1.0 && limits.in_flight_max >= 1);
        Limiter {
            limits,
            tracked: moka::sync::Cache::builder()
                .max_capacity(LIMITER_TRACKED_PRINCIPALS_MAX)
                .time_to_idle(Duration::from_secs(LIMITER_TRACKED_IDLE_SECS))
                .build(),
        }
    }

    /// Admits one request of the principal whose room is `room`, or says when to retry.
    pub fn admit(&self, principal: &K) -> Result<Admission, Refusal> {
        let tracked = self.tracked.get_with(principal.clone(), || {
            Arc::new(Tracked {
                bucket: Mutex::new(Bucket { tokens: self.limits.burst, updated: Instant::now() }),
                in_flight: Arc::new(Semaphore::new(self.limits.in_flight_max)),
            })
        });
        {
            let mut bucket = tracked.bucket.lock().expect("bucket lock");
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
        tracked
            .in_flight
            .clone()
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
