//! The one key ring: the current secret (`SECRET_KEY`) and the earlier ones still honoured
//! (`SECRET_KEY_PREVIOUS`), for everything keyed by them: digests of API and licence keys,
//! signed storage URLs, and secrets sealed at rest.
//!
//! New digests, signatures and seals use the current secret only. Checks try the current
//! secret first and then each earlier one, and say which answered ([`Generation`]), so the
//! caller can re-key what an earlier secret made the first time it is used.

use std::sync::Arc;

use data_encoding::HEXLOWER;
use ring::hmac;

use crate::sealing::Sealer;

/// Which secret of the ring answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// The current secret.
    Current,
    /// An earlier secret (its position in `SECRET_KEY_PREVIOUS`): re-key what it made.
    Previous(usize),
}

struct Secret {
    raw: Box<[u8]>,
    hmac: hmac::Key,
}

impl Secret {
    fn new(raw: &[u8]) -> Self {
        Self {
            raw: raw.into(),
            hmac: hmac::Key::new(hmac::HMAC_SHA256, raw),
        }
    }
}

/// The current secret and the earlier ones; cheap to clone.
#[derive(Clone)]
pub struct KeyRing {
    /// The current secret first.
    secrets: Arc<[Secret]>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("previous", &(self.secrets.len() - 1))
            .finish_non_exhaustive()
    }
}

fn generation(i: usize) -> Generation {
    match i {
        0 => Generation::Current,
        n => Generation::Previous(n - 1),
    }
}

impl KeyRing {
    /// A ring of `current` and the `previous` secrets still honoured, newest first.
    pub fn new(current: &[u8], previous: &[&[u8]]) -> Self {
        let secrets: Vec<Secret> = std::iter::once(current)
            .chain(previous.iter().copied())
            .map(Secret::new)
            .collect();
        Self {
            secrets: secrets.into(),
        }
    }

    /// The current secret's bytes (to derive other keys from).
    pub fn current(&self) -> &[u8] {
        &self.secrets[0].raw
    }

    /// How many earlier secrets the ring honours.
    pub fn previous_count(&self) -> usize {
        self.secrets.len() - 1
    }

    /// HMAC-SHA256 of `data` under the current secret.
    pub fn sign(&self, data: &[u8]) -> hmac::Tag {
        hmac::sign(&self.secrets[0].hmac, data)
    }

    /// [`KeyRing::sign`] in lower-case hex (how digests are stored).
    pub fn digest(&self, data: &[u8]) -> String {
        HEXLOWER.encode(self.sign(data).as_ref())
    }

    /// The hex digest of `data` under each secret, current first: the look-up keys of a
    /// record an earlier secret digested.
    pub fn digests<'a>(&'a self, data: &'a [u8]) -> impl Iterator<Item = (Generation, String)> + 'a {
        self.secrets
            .iter()
            .enumerate()
            .map(move |(i, s)| (generation(i), HEXLOWER.encode(hmac::sign(&s.hmac, data).as_ref())))
    }

    /// Which secret made `tag` for `data` (compared in constant time), if any.
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> Option<Generation> {
        self.secrets
            .iter()
            .position(|s| hmac::verify(&s.hmac, data, tag).is_ok())
            .map(generation)
    }

    /// [`KeyRing::verify`] for a lower-case hex tag (anything else matches nothing).
    pub fn verify_hex(&self, data: &[u8], tag_hex: &str) -> Option<Generation> {
        let tag = HEXLOWER.decode(tag_hex.as_bytes()).ok()?;
        self.verify(data, &tag)
    }

    /// `generation`'s secret made `tag` for `data` (constant time).
    pub fn verify_with(&self, generation: Generation, data: &[u8], tag_hex: &str) -> bool {
        let i = match generation {
            Generation::Current => 0,
            Generation::Previous(n) => n + 1,
        };
        let Some(secret) = self.secrets.get(i) else {
            return false;
        };
        HEXLOWER
            .decode(tag_hex.as_bytes())
            .is_ok_and(|tag| hmac::verify(&secret.hmac, data, &tag).is_ok())
    }

    /// The sealer for `purpose` under the current secret.
    pub fn sealer(&self, purpose: &[u8]) -> Result<Sealer, ring::error::Unspecified> {
        Sealer::new(self.current(), purpose)
    }

    /// Opens what [`Sealer::seal`] sealed for `purpose` and `context` under any secret of
    /// the ring, saying which.
    pub fn open(&self, purpose: &[u8], sealed: &str, context: &str) -> Option<(Vec<u8>, Generation)> {
        self.secrets.iter().enumerate().find_map(|(i, s)| {
            Sealer::new(&s.raw, purpose)
                .ok()?
                .open(sealed, context)
                .ok()
                .map(|plain| (plain, generation(i)))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{Generation, KeyRing};

    #[test]
    fn signs_with_the_current_secret_and_accepts_earlier_ones() {
        let old = KeyRing::new(b"old-secret", &[]);
        let ring = KeyRing::new(b"new-secret", &[b"older", b"old-secret"]);
        let by_old = old.digest(b"eb_key");
        assert_eq!(
            ring.verify_hex(b"eb_key", &ring.digest(b"eb_key")),
            Some(Generation::Current)
        );
        assert_eq!(ring.verify_hex(b"eb_key", &by_old), Some(Generation::Previous(1)));
        assert_eq!(ring.verify_hex(b"other", &by_old), None);
        assert_eq!(ring.verify_hex(b"eb_key", "not hex"), None);
        assert!(ring.verify_with(Generation::Previous(1), b"eb_key", &by_old));
        assert!(!ring.verify_with(Generation::Current, b"eb_key", &by_old));
        assert!(!ring.verify_with(Generation::Previous(7), b"eb_key", &by_old));
        let looked_up: Vec<_> = ring.digests(b"eb_key").collect();
        assert_eq!(looked_up.len(), 3);
        assert_eq!(looked_up[2], (Generation::Previous(1), by_old));
        assert_eq!(ring.previous_count(), 2);
        assert!(!format!("{ring:?}").contains("secret"));
    }

    #[test]
    fn opens_what_any_secret_sealed() {
        let old = KeyRing::new(b"old-secret", &[]);
        let sealed = old.sealer(b"purpose").unwrap().seal(b"plain", "ctx").unwrap();
        let ring = KeyRing::new(b"new-secret", &[b"old-secret"]);
        assert_eq!(
            ring.open(b"purpose", &sealed, "ctx"),
            Some((b"plain".to_vec(), Generation::Previous(0)))
        );
        assert_eq!(ring.open(b"purpose", &sealed, "other context"), None);
        assert_eq!(ring.open(b"other purpose", &sealed, "ctx"), None);
        let fresh = ring.sealer(b"purpose").unwrap().seal(b"plain", "ctx").unwrap();
        assert_eq!(
            ring.open(b"purpose", &fresh, "ctx"),
            Some((b"plain".to_vec(), Generation::Current))
        );
    }
}
