//! The signing keys: loaded or created on first use, rotated, retired and published.

use data_encoding::BASE64URL_NOPAD;
use shared_db::sealing::Sealer;
use shared_db::{DbConn, DbPool, Generation, KeyRing, events};

use super::LicenseService;
use crate::cert::Signer;
use crate::model::{LicenseError, PublicKey, PublishedKey, invalid};
use crate::store::{self, SigningKeyRow};

const SEALING_PURPOSE: &[u8] = b"license signing key";

impl LicenseService {
    /// Generates a new signing key and stores it sealed; it signs from the next start
    /// of each replica, while every earlier key stays published so the certificates it
    /// signed keep verifying. Returns the new key id.
    pub async fn rotate_signing_key(&self) -> Result<String, LicenseError> {
        let sealer = sealer(&self.ring)?;
        let mut conn = self.pool.get().await?;
        let signer = store_new_signer(&mut conn, &sealer).await?;
        record_key_event(&mut conn, "license.signing_key_rotated", signer.kid()).await?;
        Ok(signer.kid().to_owned())
    }

    /// Stops publishing an earlier signing key (certificates it signed stop verifying
    /// against the published keys). The key in use cannot be retired.
    pub async fn retire_signing_key(&self, kid: &str) -> Result<(), LicenseError> {
        let current = self.signer().await?.kid().to_owned();
        if kid == current {
            return Err(invalid("kid", "that key signs new certificates; rotate first"));
        }
        let mut conn = self.pool.get().await?;
        let n = store::delete_signing_key(&mut conn, kid).await?;
        if n == 0 {
            return Err(invalid("kid", "no stored signing key has that id"));
        }
        record_key_event(&mut conn, "license.signing_key_retired", kid).await
    }

    /// The signing key, loaded (or created) from the database on first use. Call it at
    /// start-up to fail fast on a key that this `SECRET_KEY` cannot open; a database that
    /// is down then is retried on the next use.
    pub async fn signer(&self) -> Result<&Signer, LicenseError> {
        self.signer
            .get_or_try_init(|| load_or_create_signer(&self.pool, &self.ring))
            .await
    }

    /// The `EB-Signature` header value for a licence-holder answer whose body is `body`
    /// (see [`crate::cert::SIGNATURE_HEADER`]).
    pub async fn sign_answer(&self, body: &[u8]) -> Result<String, LicenseError> {
        Ok(self.signer().await?.sign_response(body))
    }

    /// The key that verifies certificates.
    pub async fn public_key(&self) -> Result<PublicKey, LicenseError> {
        let signer = self.signer().await?;
        let current = published(signer.kid(), signer.public_key());
        let mut conn = self.pool.get().await?;
        let stored = store::signing_public_keys(&mut conn).await?;
        let mut keys: Vec<PublishedKey> = vec![current.clone()];
        for (kid, public_key) in stored {
            if kid != current.kid
                && let Ok(raw) = BASE64URL_NOPAD.decode(public_key.as_bytes())
            {
                keys.push(published(&kid, &raw));
            }
        }
        Ok(PublicKey {
            kid: current.kid,
            algorithm: current.algorithm,
            public_key: current.public_key,
            public_key_pem: current.public_key_pem,
            keys,
        })
    }
}

/// The sealer for signing keys under the current secret.
fn sealer(ring: &KeyRing) -> Result<Sealer, LicenseError> {
    ring.sealer(SEALING_PURPOSE)
        .map_err(|_| LicenseError::Signing("key derivation".into()))
}

/// A key as `GET /public-key` publishes it.
fn published(kid: &str, raw: &[u8]) -> PublishedKey {
    const SPKI_ED25519: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    let mut der = SPKI_ED25519.to_vec();
    der.extend_from_slice(raw);
    PublishedKey {
        kid: kid.to_owned(),
        algorithm: "Ed25519",
        public_key: BASE64URL_NOPAD.encode(raw),
        public_key_pem: format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            data_encoding::BASE64.encode(&der)
        ),
    }
}

async fn record_key_event(conn: &mut DbConn, event_type: &str, kid: &str) -> Result<(), LicenseError> {
    Ok(events::record(
        conn,
        event_type,
        "cli",
        &format!("signing_key:{kid}"),
        serde_json::json!({ "kid": kid }),
    )
    .await?)
}

/// The newest stored signing key (opened with the current secret, or with an earlier
/// one and then sealed again under the current), or a new one stored sealed.
async fn load_or_create_signer(pool: &DbPool, ring: &KeyRing) -> Result<Signer, LicenseError> {
    let sealer = sealer(ring)?;
    let mut conn = pool.get().await?;
    for _ in 0..2 {
        if let Some(row) = store::newest_signing_key(&mut conn).await? {
            let pkcs8 = match ring.open(SEALING_PURPOSE, &row.private_key_sealed, &row.kid) {
                Some((pkcs8, Generation::Current)) => pkcs8,
                Some((pkcs8, Generation::Previous(_))) => {
                    let resealed = sealer
                        .seal(&pkcs8, &row.kid)
                        .map_err(|_| LicenseError::Signing("sealing".into()))?;
                    store::reseal_signing_key(&mut conn, &row.kid, &resealed).await?;
                    tracing::info!(kid = %row.kid, "sealed the licence signing key again under the new SECRET_KEY");
                    pkcs8
                }
                None => {
                    return Err(LicenseError::Signing(format!(
                        "the stored key `{}` cannot be opened with this SECRET_KEY (was SECRET_KEY changed? keep the old one in SECRET_KEY_PREVIOUS)",
                        row.kid
                    )));
                }
            };
            return Signer::from_pkcs8(&pkcs8).map_err(|_| LicenseError::Signing("stored key is not Ed25519".into()));
        }
        store_new_signer(&mut conn, &sealer).await?;
    }
    Err(LicenseError::Signing("could not store a signing key".into()))
}

/// Generates a signing key and stores it sealed under `sealer`.
async fn store_new_signer(conn: &mut DbConn, sealer: &Sealer) -> Result<Signer, LicenseError> {
    let (signer, pkcs8) = Signer::generate().map_err(|_| LicenseError::Signing("key generation".into()))?;
    let row = SigningKeyRow {
        kid: signer.kid().to_owned(),
        algorithm: "Ed25519".into(),
        public_key: BASE64URL_NOPAD.encode(signer.public_key()),
        private_key_sealed: sealer
            .seal(&pkcs8, signer.kid())
            .map_err(|_| LicenseError::Signing("sealing".into()))?,
        created_at: shared_db::now(),
    };
    store::insert_signing_key(conn, &row).await?;
    tracing::info!(kid = %row.kid, "generated a licence signing key");
    Ok(signer)
}
