//! The licence server's rules: issuing, the lifecycle, validation in its documented
//! order, machine activation within limits, and offline certificates. One file per use
//! case; the rows come from [`crate::store`].

use std::sync::Arc;

use shared_db::batch::Coalescer;
use shared_db::{DbConn, DbPool, KeyRing, events};

use crate::cert::Signer;
use crate::key::{KeyError, PresentedKey};
use crate::model::LicenseError;
use crate::store::{self, Held, MachineRow};

mod checkout;
mod culling;
mod failures;
mod import;
mod issue;
mod keys;
mod lifecycle;
mod list;
mod machines;
mod policies;
mod validate;

pub use culling::SweepReport;

/// The licence service.
#[derive(Clone)]
pub struct LicenseService {
    pool: DbPool,
    /// The current secret and the earlier ones (`SECRET_KEY_PREVIOUS`): keys digested
    /// and signing keys sealed under an earlier one still open, and are re-keyed under
    /// the current secret on use.
    ring: KeyRing,
    signer: Arc<tokio::sync::OnceCell<Signer>>,
    /// Licences by key digest, with their machine counts: concurrent holder calls share
    /// queries (see [`shared_db::batch`]).
    by_digest: Coalescer<String, Held>,
    /// Machines by (licence id, fingerprint), shared the same way.
    by_fingerprint: Coalescer<(String, String), MachineRow>,
    /// Failed validations waiting to be recorded as one event per licence and code.
    failures: Arc<failures::FailureLog>,
}

/// Queries in flight at once per coalesced look-up, and distinct keys per query.
const LOOKUP_SLOTS: usize = 2;
const LOOKUP_BATCH: usize = 64;

impl LicenseService {
    /// Builds the service over `ring` (the current secret digests keys and seals the
    /// signing key; earlier ones are still accepted). The signing key is
    /// `configured_key` (PKCS#8 Ed25519) when given; otherwise the oldest stored key,
    /// generated and stored sealed on first use (see [`LicenseService::signer`]).
    pub fn new(pool: DbPool, ring: KeyRing, configured_key: Option<&[u8]>) -> Result<Self, LicenseError> {
        let signer = tokio::sync::OnceCell::new();
        if let Some(pkcs8) = configured_key {
            let configured = Signer::from_pkcs8(pkcs8)
                .map_err(|_| LicenseError::Signing("not a PKCS#8 Ed25519 private key".into()))?;
            signer
                .set(configured)
                .map_err(|_| LicenseError::Signing("set twice".into()))?;
        }
        let by_digest = {
            let pool = pool.clone();
            Coalescer::new(
                LOOKUP_SLOTS,
                LOOKUP_BATCH,
                Arc::new(move |digests: Vec<String>| {
                    let pool = pool.clone();
                    Box::pin(async move {
                        let mut conn = pool.get().await?;
                        let rows = store::find_by_digests(&mut conn, &digests).await?;
                        Ok(rows.into_iter().map(|h| (h.0.key_digest.clone(), h)).collect())
                    }) as futures_util::future::BoxFuture<'static, _>
                }),
            )
        };
        let by_fingerprint = {
            let pool = pool.clone();
            Coalescer::new(
                LOOKUP_SLOTS,
                LOOKUP_BATCH,
                Arc::new(move |pairs: Vec<(String, String)>| {
                    let pool = pool.clone();
                    Box::pin(async move {
                        let mut conn = pool.get().await?;
                        let rows = store::find_machines(&mut conn, &pairs).await?;
                        Ok(rows
                            .into_iter()
                            .map(|m| ((m.license_id.clone(), m.fingerprint.clone()), m))
                            .collect())
                    }) as futures_util::future::BoxFuture<'static, _>
                }),
            )
        };
        Ok(Self {
            pool,
            ring,
            signer: Arc::new(signer),
            by_digest,
            by_fingerprint,
            failures: Arc::new(failures::FailureLog::default()),
        })
    }

    /// The licence `key` opens: by its digest under the current secret, else under an
    /// earlier one (then re-digested under the current secret).
    async fn find_key(&self, key: &PresentedKey) -> Result<Option<Held>, LicenseError> {
        let current = self.digest(key.as_str());
        if let Some(found) = self.by_digest.get(current.clone()).await? {
            return Ok(Some(found));
        }
        if self.ring.previous_count() == 0 {
            return Ok(None);
        }
        let mut conn = self.pool.get().await?;
        for (_, digest) in self.ring.digests(key.as_str().as_bytes()).skip(1) {
            let Some((mut row, count, policy)) = store::find_by_digest(&mut conn, &digest).await? else {
                continue;
            };
            let id = row.id.clone();
            shared_db::transaction!(conn, LicenseError, |c| {
                store::set_key_digest(c, &id, &current).await?;
                record(c, "license.rekeyed", "system", &id, serde_json::json!({})).await
            })?;
            row.key_digest = current;
            return Ok(Some((row, count, policy)));
        }
        Ok(None)
    }

    /// The machine with `fingerprint` on licence `license_id`, through the shared look-up.
    async fn find_machine(&self, license_id: &str, fingerprint: &str) -> Result<Option<MachineRow>, LicenseError> {
        Ok(self
            .by_fingerprint
            .get((license_id.to_owned(), fingerprint.to_owned()))
            .await?)
    }

    /// A key's digest under the current secret (how it is stored), from its digested
    /// form ([`PresentedKey::as_str`]).
    fn digest(&self, key: &str) -> String {
        self.ring.digest(key.as_bytes())
    }

    /// The licence a holder's key opens: a key of ours or an imported one is looked up
    /// by its digest; text that can be neither is refused as malformed.
    async fn lookup(&self, key: &str) -> Result<Lookup, LicenseError> {
        let key = match PresentedKey::parse(key) {
            Ok(key) => key,
            Err(e) => return Ok(Lookup::Malformed(e)),
        };
        Ok(match self.find_key(&key).await? {
            Some(found) => Lookup::Found(found),
            None => Lookup::Unknown(unknown_detail(&key)),
        })
    }

    /// Opens the licence a holder's key names, or refuses the key.
    async fn open(&self, key: &str) -> Result<Held, LicenseError> {
        match self.lookup(key).await? {
            Lookup::Found(found) => Ok(found),
            Lookup::Unknown(detail) => Err(LicenseError::KeyInvalid(detail)),
            Lookup::Malformed(e) => Err(LicenseError::KeyInvalid(e.to_string())),
        }
    }
}

/// What a holder's key opens. Returned once per holder call and never stored, so the
/// row is not boxed (no allocation on the hot path).
#[allow(clippy::large_enum_variant)]
enum Lookup {
    /// The licence, its machine count and its policy.
    Found(Held),
    /// No licence has this key; in words.
    Unknown(String),
    /// Neither a key of ours nor one that can have been imported.
    Malformed(KeyError),
}

/// Why no licence opens `key`, in words: a key shaped as ours whose check symbols do
/// not match is most likely mistyped.
fn unknown_detail(key: &PresentedKey) -> String {
    match key {
        PresentedKey::Imported(_, KeyError::Checksum) => format!("no licence has this key; {}", KeyError::Checksum),
        _ => "no licence has this key".into(),
    }
}

/// Records a licence's audit event.
async fn record(
    conn: &mut DbConn,
    event_type: &str,
    actor: &str,
    license_id: &str,
    data: serde_json::Value,
) -> Result<(), LicenseError> {
    Ok(events::record(conn, event_type, actor, &format!("license:{license_id}"), data).await?)
}
