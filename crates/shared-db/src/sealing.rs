//! Encrypts small secrets at rest (the licence signing key, webhook signing secrets):
//! AES-256-GCM under a key derived from `SECRET_KEY` with HKDF-SHA256, so the database
//! never holds them in plain text.

use data_encoding::BASE64URL_NOPAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

/// Seals and opens small secrets.
pub struct Sealer {
    key: LessSafeKey,
}

impl Sealer {
    /// Derives the sealing key from `secret` for `purpose`.
    pub fn new(secret: &[u8], purpose: &[u8]) -> Result<Self, ring::error::Unspecified> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"event-bridge").extract(secret);
        let info = [purpose];
        let okm = prk.expand(&info, &AES_256_GCM)?;
        Ok(Self {
            key: LessSafeKey::new(UnboundKey::from(okm)),
        })
    }

    /// Encrypts `plain`, binding it to `context`; base64url of nonce and ciphertext.
    pub fn seal(&self, plain: &[u8], context: &str) -> Result<String, ring::error::Unspecified> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce)?;
        let mut buf = plain.to_vec();
        self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context.as_bytes()),
            &mut buf,
        )?;
        let mut out = nonce.to_vec();
        out.extend(buf);
        Ok(BASE64URL_NOPAD.encode(&out))
    }

    /// Decrypts what `seal` produced with the same secret and context.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, ring::error::Unspecified> {
        let raw = BASE64URL_NOPAD
            .decode(sealed.as_bytes())
            .map_err(|_| ring::error::Unspecified)?;
        if raw.len() < NONCE_LEN {
            return Err(ring::error::Unspecified);
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)?;
        let mut buf = ct.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn seals_and_opens_only_with_the_same_secret_and_context() {
        let a = Sealer::new(b"secret-one-0123456789", b"purpose").unwrap();
        let b = Sealer::new(b"secret-two-0123456789", b"purpose").unwrap();
        let sealed = a.seal(b"private key bytes", "kid1").unwrap();
        assert!(!sealed.contains("private"));
        assert_eq!(a.open(&sealed, "kid1").unwrap(), b"private key bytes");
        assert!(a.open(&sealed, "kid2").is_err());
        assert!(b.open(&sealed, "kid1").is_err());
        assert!(a.open("garbage", "kid1").is_err());
        assert_ne!(
            a.seal(b"x", "k").unwrap(),
            a.seal(b"x", "k").unwrap(),
            "fresh nonce each time"
        );
    }
}
