//! Per-address and per-key limits on licence-holder calls (validate, activate, ...), and
//! per-address limits on failed API-key authentications, so keys cannot be brute-forced. Limits are kept in each replica's memory (`governor`'s
//! GCRA): with N replicas behind a balancer the effective limit is up to N times higher.
//! Addresses count by [`crate::net::limit_key`]: IPv6 clients by their /64.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use ring::digest;

use crate::problem::ApiError;

/// The limiters.
pub struct HolderLimits {
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    by_key: DefaultKeyedRateLimiter<[u8; 16]>,
    auth_failures: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses that used up their failures, until when.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    clock: DefaultClock,
    /// A key's canonical form, when the text is a key (see [`Self::with_canonical_key`]).
    canonical: CanonicalKey,
}

/// A key's canonical spelling, or `None` for text that is no key (hashed as sent).
pub type CanonicalKey = fn(&str) -> Option<String>;

impl HolderLimits {
    /// `per_address` and `per_key` calls per minute, each with a burst of the same size.
    pub fn new(per_address: u32, per_key: u32) -> Self {
        Self {
            by_address: DefaultKeyedRateLimiter::keyed(quota(per_address)),
            by_key: DefaultKeyedRateLimiter::keyed(quota(per_key)),
            auth_failures: DefaultKeyedRateLimiter::keyed(quota(60)),
            blocked: Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
            canonical: |_| None,
        }
    }

    /// Counts every spelling of one key (as `canonical` has it) in one bucket; without
    /// it, keys count as sent.
    pub fn with_canonical_key(mut self, canonical: CanonicalKey) -> Self {
        self.canonical = canonical;
        self
    }

    /// Allows `per_minute` failed API-key authentications per address (default 60);
    /// past that, every API-key request from the address is refused with 429 until the
    /// bucket refills, right key or not.
    pub fn with_auth_failures(mut self, per_minute: u32) -> Self {
        self.auth_failures = DefaultKeyedRateLimiter::keyed(quota(per_minute));
        self
    }

    /// 429 while `address` is blocked for failing too often.
    pub fn auth_allowed(&self, address: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = address.map(crate::net::limit_key) else {
            return Ok(());
        };
        let until = self.blocked.lock().ok().and_then(|b| b.get(&ip).copied());
        match until {
            Some(t) if t > Instant::now() => Err(ApiError::rate_limited(t - Instant::now())),
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication from `address`.
    pub fn auth_failed(&self, address: Option<IpAddr>) {
        let Some(ip) = address.map(crate::net::limit_key) else {
            return;
        };
        if let Err(not_until) = self.auth_failures.check_key(&ip) {
            let wait = not_until.wait_time_from(self.clock.now()).max(Duration::from_secs(1));
            if let Ok(mut blocked) = self.blocked.lock() {
                blocked.insert(ip, Instant::now() + wait);
            }
        }
    }

    /// Admits one call from `address` with `key`, or answers 429 with `Retry-After`.
    /// Keys are held only as a truncated hash of their canonical form (the gateway's is the
    /// licence-key parser's: case, dashes, spaces, `O`/`0`, `I`/`L`/`1`), so every spelling
    /// of one key shares a bucket; text that is no key is hashed as sent.
    pub fn check(&self, address: Option<IpAddr>, key: &str) -> Result<(), ApiError> {
        if let Some(ip) = address.map(crate::net::limit_key)
            && let Err(not_until) = self.by_address.check_key(&ip)
        {
            return Err(ApiError::rate_limited(not_until.wait_time_from(self.clock.now())));
        }
        let canonical = (self.canonical)(key);
        let normalised = canonical.as_deref().unwrap_or(key);
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
        if let Ok(mut blocked) = self.blocked.lock() {
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
        }
        self.auth_failures.retain_recent();
        self.auth_failures.shrink_to_fit();
        self.by_address.retain_recent();
        self.by_key.retain_recent();
        self.by_address.shrink_to_fit();
        self.by_key.shrink_to_fit();
    }
}

fn quota(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
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
        assert!(limits.check(a, "key-1").is_ok(), "same key");
        let e = limits.check(b, "key-1").unwrap_err();
        assert_eq!(e.code(), "rate_limited", "the key's bucket is empty");
        assert!(limits.check(a, "key-2").is_err(), "the address's bucket is empty");
        assert!(limits.check(b, "key-3").is_ok());
    }

    /// Every spelling the canonical form accepts is one key, so one bucket.
    #[test]
    fn spellings_of_one_key_share_a_bucket() {
        let spellings = ["AB-CD", "ab-cd", "ABCD", "abcd"];
        let limits = HolderLimits::new(1000, spellings.len() as u32 - 1)
            .with_canonical_key(|k| Some(k.replace('-', "").to_ascii_uppercase()));
        let mut refused = 0;
        for (i, s) in spellings.iter().enumerate() {
            // Each from its own address, so only the key's bucket can refuse.
            let address = Some(IpAddr::from([10, 0, 0, i as u8]));
            if limits.check(address, s).is_err() {
                refused += 1;
            }
        }
        assert_eq!(refused, 1, "the last spelling finds the key's bucket empty");
    }

    #[test]
    fn failed_authentications_block_the_address() {
        let limits = HolderLimits::new(10, 10).with_auth_failures(2);
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        for _ in 0..2 {
            assert!(limits.auth_allowed(a).is_ok());
            limits.auth_failed(a);
        }
        assert!(limits.auth_allowed(a).is_ok(), "two failures are within the burst");
        limits.auth_failed(a);
        assert_eq!(limits.auth_allowed(a).unwrap_err().code(), "rate_limited");
        assert!(limits.auth_allowed(b).is_ok(), "other addresses are not affected");
    }
}
