//! Per-address and per-key limits on licence-holder calls (validate, activate, ...), so
//! keys cannot be brute-forced. Limits are kept in each replica's memory (`governor`'s
//! GCRA): with N replicas behind a balancer the effective limit is up to N times higher.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use ring::digest;

use crate::error::ApiError;

/// The limiters.
pub struct HolderLimits {
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    by_key: DefaultKeyedRateLimiter<[u8; 16]>,
    clock: DefaultClock,
}

impl HolderLimits {
    /// `per_address` and `per_key` calls per minute, each with a burst of the same size.
    pub fn new(per_address: u32, per_key: u32) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            by_address: DefaultKeyedRateLimiter::keyed(quota(per_address)),
            by_key: DefaultKeyedRateLimiter::keyed(quota(per_key)),
            clock: DefaultClock::default(),
        }
    }

    /// Admits one call from `address` with `key`, or answers 429 with `Retry-After`.
    /// Keys are held only as a truncated hash, normalised so spellings of one key share
    /// a bucket.
    pub fn check(&self, address: Option<IpAddr>, key: &str) -> Result<(), ApiError> {
        if let Some(ip) = address
            && let Err(not_until) = self.by_address.check_key(&ip)
        {
            return Err(ApiError::rate_limited(not_until.wait_time_from(self.clock.now())));
        }
        let normalised: String = key
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let hash = digest::digest(&digest::SHA256, normalised.as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&hash.as_ref()[..16]);
        if let Err(not_until) = self.by_key.check_key(&id) {
            return Err(ApiError::rate_limited(not_until.wait_time_from(self.clock.now())));
        }
        Ok(())
    }

    /// Forgets idle buckets (called periodically).
    pub fn prune(&self) {
        self.by_address.retain_recent();
        self.by_key.retain_recent();
        self.by_address.shrink_to_fit();
        self.by_key.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn limits_per_address_and_per_key() {
        let limits = HolderLimits::new(2, 2);
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        assert!(limits.check(a, "key-1").is_ok());
        assert!(limits.check(a, "KEY 1").is_ok(), "same key, other spelling");
        let e = limits.check(b, "key-1").unwrap_err();
        assert_eq!(e.code(), "rate_limited", "the key's bucket is empty");
        assert!(limits.check(a, "key-2").is_err(), "the address's bucket is empty");
        assert!(limits.check(b, "key-3").is_ok());
    }
}
