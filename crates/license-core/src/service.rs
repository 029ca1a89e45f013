//! The licence server's rules: issuing, the lifecycle, validation in its documented
//! order, machine activation within limits, and offline certificates.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use data_encoding::BASE64URL_NOPAD;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use ring::hmac;
use shared_db::batch::Coalescer;
use shared_db::events;
use shared_db::{DbConn, DbError, DbPool, with_conn};

use crate::cert::{CertificatePayload, Signer};
use crate::key::LicenseKey;
use crate::model::{
    ActivateRequest, Checkout, CheckoutRequest, IssueLicense, License, LicenseFilter, LicensePage, LicensePatch,
    LicenseStatus, Machine, MachineRequest, Product, PublicKey, PublishedKey, Renew, ValidateRequest, Validation,
    ValidationCode,
};
use crate::schema::{licenses, machines, signing_keys};
use shared_db::sealing::Sealer;

/// Everything a licence operation can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum LicenseError {
    /// No licence with that id.
    #[error("no licence has that id")]
    NotFound,
    /// No such machine on the licence.
    #[error("no machine with that fingerprint or id is activated on this licence")]
    MachineNotFound,
    /// A field is unacceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The lifecycle does not allow this change.
    #[error("cannot {action} a {from} licence")]
    InvalidTransition {
        /// What was asked.
        action: &'static str,
        /// The current status.
        from: &'static str,
    },
    /// The key is malformed or opens no licence.
    #[error("{0}")]
    KeyInvalid(String),
    /// The licence cannot be used for this (suspended, expired, over its limit...).
    #[error("{detail}")]
    NotValid {
        /// The validation code.
        code: ValidationCode,
        /// In words.
        detail: String,
    },
    /// That fingerprint is already activated on the licence.
    #[error("a machine with this fingerprint is already activated on this licence")]
    MachineExists,
    /// The signing key could not be loaded or used.
    #[error("licence signing key: {0}")]
    Signing(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for LicenseError {
    fn from(e: diesel::result::Error) -> Self {
        LicenseError::Db(e.into())
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> LicenseError {
    LicenseError::Invalid {
        field,
        message: message.into(),
    }
}

/// A stored licence.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = licenses, treat_none_as_null = true, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
struct LicenseRow {
    id: String,
    product: String,
    name: String,
    owner_email: String,
    status: String,
    key_prefix: String,
    key_digest: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    expires_at: Option<NaiveDateTime>,
    max_machines: Option<i32>,
    entitlements: String,
    metadata: String,
    require_machine: bool,
    heartbeat_interval_secs: Option<i32>,
    last_validated_at: Option<NaiveDateTime>,
}

/// A stored machine.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = machines, check_for_backend(diesel::mysql::Mysql, diesel::sqlite::Sqlite))]
struct MachineRow {
    id: String,
    license_id: String,
    fingerprint: String,
    name: Option<String>,
    platform: Option<String>,
    hostname: Option<String>,
    created_at: NaiveDateTime,
    last_heartbeat_at: Option<NaiveDateTime>,
}

impl From<MachineRow> for Machine {
    fn from(r: MachineRow) -> Self {
        Machine {
            id: r.id,
            license_id: r.license_id,
            fingerprint: r.fingerprint,
            name: r.name,
            platform: r.platform,
            hostname: r.hostname,
            created_at: r.created_at.and_utc(),
            last_heartbeat_at: r.last_heartbeat_at.map(|t| t.and_utc()),
        }
    }
}

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = signing_keys)]
struct SigningKeyRow {
    kid: String,
    algorithm: String,
    public_key: String,
    private_key_sealed: String,
    created_at: NaiveDateTime,
}

/// The licence's machine count as a correlated subquery, so a licence and its count
/// come back in one statement (a typed expression, unlike raw SQL, keeps the statement
/// in the driver's prepared-statement cache).
#[diesel::dsl::auto_type(no_type_alias)]
fn machine_count() -> _ {
    machines::table
        .filter(machines::license_id.eq(licenses::id))
        .count()
        .single_value()
        .assume_not_null()
}

impl LicenseRow {
    fn status(&self) -> LicenseStatus {
        LicenseStatus::parse(&self.status).unwrap_or(LicenseStatus::Revoked)
    }

    fn into_license(self, machines_count: i64) -> Result<License, LicenseError> {
        let corrupt = |what: &str| LicenseError::Db(DbError::Corrupt(format!("licence {}: {what}", self.id)));
        Ok(License {
            product: Product::parse(&self.product).ok_or_else(|| corrupt("product"))?,
            status: match LicenseStatus::parse(&self.status).ok_or_else(|| corrupt("status"))? {
                LicenseStatus::Active if self.expires_at.is_some_and(|t| t <= shared_db::now()) => {
                    LicenseStatus::Expired
                }
                stored => stored,
            },
            entitlements: serde_json::from_str(&self.entitlements).map_err(|_| corrupt("entitlements"))?,
            metadata: serde_json::from_str(&self.metadata).map_err(|_| corrupt("metadata"))?,
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
            expires_at: self.expires_at.map(|t| t.and_utc()),
            last_validated_at: self.last_validated_at.map(|t| t.and_utc()),
            machines_count,
            id: self.id,
            name: self.name,
            owner_email: self.owner_email,
            key_prefix: self.key_prefix,
            max_machines: self.max_machines,
            require_machine: self.require_machine,
            heartbeat_interval_secs: self.heartbeat_interval_secs,
        })
    }
}

/// Parses a duration such as `30d`, `12h`, `1y` (humantime syntax).
pub fn parse_duration(field: &'static str, s: &str) -> Result<chrono::Duration, LicenseError> {
    let d: Duration = humantime::parse_duration(s.trim())
        .map_err(|e| invalid(field, format!("`{s}` is not a duration such as 30d, 12h or 1y ({e})")))?;
    if d.is_zero() {
        return Err(invalid(field, "must be longer than zero"));
    }
    if d > Duration::from_secs(100 * 366 * 86_400) {
        return Err(invalid(field, "must be under 100 years"));
    }
    chrono::Duration::from_std(d).map_err(|_| invalid(field, "too long"))
}

fn check_name(name: &str) -> Result<String, LicenseError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(invalid("name", "must be 1 to 200 characters"));
    }
    Ok(name.to_owned())
}

fn check_email(email: &str) -> Result<String, LicenseError> {
    let email = email.trim();
    if email.len() > 254 || !email_address::EmailAddress::is_valid(email) {
        return Err(invalid("owner_email", format!("`{email}` is not an email address")));
    }
    Ok(email.to_owned())
}

fn check_entitlements(list: &[String]) -> Result<String, LicenseError> {
    if list.len() > 100 {
        return Err(invalid("entitlements", "at most 100"));
    }
    for e in list {
        let ok = !e.is_empty() && e.len() <= 64 && e.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if !ok {
            return Err(invalid(
                "entitlements",
                format!("`{e}`: 1 to 64 of A-Z, a-z, 0-9, - _ . :"),
            ));
        }
    }
    let mut sorted = list.to_vec();
    sorted.sort();
    sorted.dedup();
    Ok(serde_json::Value::from(sorted).to_string())
}

fn check_metadata(m: &serde_json::Map<String, serde_json::Value>) -> Result<String, LicenseError> {
    let s = serde_json::Value::Object(m.clone()).to_string();
    if s.len() > 16 * 1024 {
        return Err(invalid("metadata", "at most 16 KiB of JSON"));
    }
    Ok(s)
}

fn check_max_machines(n: Option<i32>) -> Result<Option<i32>, LicenseError> {
    match n {
        Some(n) if n < 1 => Err(invalid("max_machines", "must be at least 1, or null for unlimited")),
        other => Ok(other),
    }
}

/// Refuses a licence that is revoked, suspended or expired at `now` with its code, the
/// way validation answers (machine rules aside: they concern validation only).
fn refuse_unusable(row: &LicenseRow, now: NaiveDateTime) -> Result<(), LicenseError> {
    let probe = ValidateRequest {
        key: String::new(),
        fingerprint: None,
        product: None,
        entitlements: Vec::new(),
    };
    let unbound = LicenseRow {
        require_machine: false,
        max_machines: None,
        ..row.clone()
    };
    match evaluate(&unbound, 0, None, &probe, now) {
        (code @ (ValidationCode::Revoked | ValidationCode::Suspended | ValidationCode::Expired), detail) => {
            Err(LicenseError::NotValid { code, detail })
        }
        _ => Ok(()),
    }
}

fn check_heartbeat(n: Option<i32>) -> Result<Option<i32>, LicenseError> {
    match n {
        Some(n) if !(10..=31_536_000).contains(&n) => Err(invalid(
            "heartbeat_interval_secs",
            "must be 10 to 31536000 seconds, or null",
        )),
        other => Ok(other),
    }
}

fn check_fingerprint(f: &str) -> Result<String, LicenseError> {
    let f = f.trim();
    if f.is_empty() || f.chars().count() > 255 || f.chars().any(char::is_control) {
        return Err(invalid("fingerprint", "must be 1 to 255 printable characters"));
    }
    Ok(f.to_owned())
}

fn check_optional(field: &'static str, v: &Option<String>, max: usize) -> Result<Option<String>, LicenseError> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) if s.chars().count() > max => Err(invalid(field, format!("at most {max} characters"))),
        Some(s) => Ok(Some(s.to_owned())),
    }
}

fn future(field: &'static str, t: DateTime<Utc>) -> Result<NaiveDateTime, LicenseError> {
    let t = t.naive_utc().trunc_subsecs(6);
    if t <= shared_db::now() {
        return Err(invalid(field, "must be in the future"));
    }
    Ok(t)
}

/// Applies the documented validation order to a licence found by its key.
fn evaluate(
    license: &LicenseRow,
    machines_count: i64,
    machine: Option<&MachineRow>,
    req: &ValidateRequest,
    now: NaiveDateTime,
) -> (ValidationCode, String) {
    use ValidationCode as C;
    match license.status() {
        LicenseStatus::Revoked => return (C::Revoked, "the licence has been revoked".into()),
        LicenseStatus::Suspended => return (C::Suspended, "the licence is suspended".into()),
        LicenseStatus::Active | LicenseStatus::Expired => {}
    }
    if license.expires_at.is_some_and(|t| t <= now) {
        return (C::Expired, "the licence has expired".into());
    }
    if let Some(product) = req.product
        && product.as_str() != license.product
    {
        return (
            C::ProductScopeMismatch,
            format!("the licence is for product `{}`", license.product),
        );
    }
    match (&req.fingerprint, machine) {
        (None, _) if license.require_machine => {
            return (
                C::NoMachine,
                "the licence requires a machine: send its fingerprint".into(),
            );
        }
        (Some(_), None) => {
            return (
                C::FingerprintScopeMismatch,
                "this fingerprint is not activated on the licence".into(),
            );
        }
        (Some(_), Some(m)) => {
            if let Some(interval) = license.heartbeat_interval_secs {
                let last = m.last_heartbeat_at.unwrap_or(m.created_at);
                if now - last > chrono::Duration::seconds(i64::from(interval)) {
                    return (
                        C::HeartbeatDead,
                        format!("no heartbeat from this machine in the last {interval} seconds"),
                    );
                }
            }
        }
        (None, _) => {}
    }
    if let Some(max) = license.max_machines
        && machines_count > i64::from(max)
    {
        return (
            C::TooManyMachines,
            format!("{machines_count} machines are activated; the licence allows {max}"),
        );
    }
    if !req.entitlements.is_empty() {
        let have: Vec<String> = serde_json::from_str(&license.entitlements).unwrap_or_default();
        let missing: Vec<&str> = req
            .entitlements
            .iter()
            .filter(|e| !have.contains(e))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return (
                C::EntitlementsMissing,
                format!("missing entitlements: {}", missing.join(", ")),
            );
        }
    }
    (C::Valid, "the licence is valid".into())
}

/// The licence service.
#[derive(Clone)]
pub struct LicenseService {
    pool: DbPool,
    digest_key: Arc<hmac::Key>,
    secret: Arc<[u8]>,
    /// Earlier secrets (`SECRET_KEY_PREVIOUS`): keys digested and signing keys sealed
    /// under them still open, and are re-keyed under the current secret on use.
    previous: Arc<Vec<(hmac::Key, Arc<[u8]>)>>,
    signer: Arc<tokio::sync::OnceCell<Signer>>,
    /// Licences by key digest, with their machine counts: concurrent holder calls share
    /// queries (see [`shared_db::batch`]).
    by_digest: Coalescer<String, (LicenseRow, i64)>,
    /// Machines by (licence id, fingerprint), shared the same way.
    by_fingerprint: Coalescer<(String, String), MachineRow>,
}

/// Queries in flight at once per coalesced look-up, and distinct keys per query.
const LOOKUP_SLOTS: usize = 2;
const LOOKUP_BATCH: usize = 64;

/// Certificate lifetimes.
const DEFAULT_TTL_DAYS: i64 = 30;
const MAX_TTL_DAYS: i64 = 366;
/// `last_validated_at` is written at most this often per licence.
const VALIDATED_AT_RESOLUTION_SECS: i64 = 60;

impl LicenseService {
    /// Builds the service. The signing key is `configured_key` (PKCS#8 Ed25519) when
    /// given; otherwise the oldest stored key, generated and stored sealed on first use
    /// (see [`LicenseService::signer`]).
    pub fn new(pool: DbPool, secret: &[u8], configured_key: Option<&[u8]>) -> Result<Self, LicenseError> {
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
                        let rows = find_by_digests(&mut conn, &digests).await?;
                        Ok(rows.into_iter().map(|(r, n)| (r.key_digest.clone(), (r, n))).collect())
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
                        let rows = find_machines(&mut conn, &pairs).await?;
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
            digest_key: Arc::new(hmac::Key::new(hmac::HMAC_SHA256, secret)),
            secret: Arc::from(secret),
            previous: Arc::new(Vec::new()),
            signer: Arc::new(signer),
            by_digest,
            by_fingerprint,
        })
    }

    /// Also accepts what earlier secrets digested or sealed (a `SECRET_KEY` rotation).
    pub fn with_previous_secrets(mut self, previous: &[&[u8]]) -> Self {
        self.previous = Arc::new(
            previous
                .iter()
                .map(|s| (hmac::Key::new(hmac::HMAC_SHA256, s), Arc::from(*s)))
                .collect(),
        );
        self
    }

    /// The licence `key` opens: by its digest under the current secret, else under an
    /// earlier one (then re-digested under the current secret).
    async fn find_key(&self, key: &LicenseKey) -> Result<Option<(LicenseRow, i64)>, LicenseError> {
        let current = self.digest(key);
        if let Some(found) = self.by_digest.get(current.clone()).await? {
            return Ok(Some(found));
        }
        if self.previous.is_empty() {
            return Ok(None);
        }
        let mut conn = self.pool.get().await?;
        for (old, _) in self.previous.iter() {
            let digest = data_encoding::HEXLOWER.encode(hmac::sign(old, key.as_str().as_bytes()).as_ref());
            let Some((mut row, count)) = find_by_digest(&mut conn, &digest).await? else {
                continue;
            };
            let id = row.id.clone();
            let new_digest = current.clone();
            conn.transaction::<_, LicenseError, _>(async move |c| {
                with_conn!(&mut *c, |c| diesel::update(licenses::table.find(&id))
                    .set(licenses::key_digest.eq(&new_digest))
                    .execute(c)
                    .await)?;
                record(c, "license.rekeyed", "system", &id, serde_json::json!({})).await
            })
            .await?;
            row.key_digest = current;
            return Ok(Some((row, count)));
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

    /// Generates a new signing key and stores it sealed; it signs from the next start
    /// of each replica, while every earlier key stays published so the certificates it
    /// signed keep verifying. Returns the new key id.
    pub async fn rotate_signing_key(&self) -> Result<String, LicenseError> {
        let sealer =
            Sealer::new(&self.secret, SEALING_PURPOSE).map_err(|_| LicenseError::Signing("key derivation".into()))?;
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
        let n = with_conn!(&mut *conn, |c| diesel::delete(signing_keys::table.find(kid))
            .execute(c)
            .await)?;
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
            .get_or_try_init(|| load_or_create_signer(&self.pool, &self.secret, &self.previous))
            .await
    }

    fn digest(&self, key: &LicenseKey) -> String {
        data_encoding::HEXLOWER.encode(hmac::sign(&self.digest_key, key.as_str().as_bytes()).as_ref())
    }

    /// The key that verifies certificates.
    pub async fn public_key(&self) -> Result<PublicKey, LicenseError> {
        let signer = self.signer().await?;
        let current = published(signer.kid(), signer.public_key());
        let mut conn = self.pool.get().await?;
        let stored: Vec<(String, String)> = with_conn!(&mut *conn, |c| signing_keys::table
            .order((signing_keys::created_at.desc(), signing_keys::kid.desc()))
            .select((signing_keys::kid, signing_keys::public_key))
            .load(c)
            .await)?;
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

    /// Issues a licence; the key is returned only here.
    pub async fn issue(&self, req: IssueLicense, actor: &str) -> Result<(License, LicenseKey), LicenseError> {
        let now = shared_db::now();
        let expires_at = match (req.expires_at, req.duration.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(invalid("duration", "give expires_at or duration, not both"));
            }
            (Some(t), None) => Some(future("expires_at", t)?),
            (None, Some(d)) => Some(now + parse_duration("duration", d)?),
            (None, None) => None,
        };
        let key = LicenseKey::generate().map_err(|_| LicenseError::Signing("no randomness".into()))?;
        let row = LicenseRow {
            id: shared_db::new_id(),
            product: req.product.as_str().to_owned(),
            name: check_name(&req.name)?,
            owner_email: check_email(&req.owner_email)?,
            status: LicenseStatus::Active.as_str().to_owned(),
            key_prefix: key.prefix().to_owned(),
            key_digest: self.digest(&key),
            created_at: now,
            updated_at: now,
            expires_at,
            max_machines: check_max_machines(req.max_machines)?,
            entitlements: check_entitlements(&req.entitlements)?,
            metadata: check_metadata(&req.metadata)?,
            require_machine: req.require_machine,
            heartbeat_interval_secs: check_heartbeat(req.heartbeat_interval_secs)?,
            last_validated_at: None,
        };
        let mut conn = self.pool.get().await?;
        let stored = row.clone();
        let actor = actor.to_owned();
        conn.transaction::<_, LicenseError, _>(async move |c| {
            with_conn!(&mut *c, |c| diesel::insert_into(licenses::table)
                .values(&stored)
                .execute(c)
                .await)?;
            record(
                c,
                "license.issued",
                &actor,
                &stored.id,
                serde_json::json!({
                    "product": stored.product, "name": stored.name, "owner_email": stored.owner_email,
                    "expires_at": stored.expires_at.map(|t| shared_db::time::rfc3339_micros::format(&t)),
                }),
            )
            .await
        })
        .await?;
        Ok((row.into_license(0)?, key))
    }

    /// One licence.
    pub async fn get(&self, id: &str) -> Result<License, LicenseError> {
        let mut conn = self.pool.get().await?;
        let (row, count) = find(&mut conn, id).await?.ok_or(LicenseError::NotFound)?;
        row.into_license(count)
    }

    /// A page of licences matching `filter`, newest first unless `order=asc`.
    pub async fn list(&self, filter: &LicenseFilter) -> Result<LicensePage, LicenseError> {
        let limit = i64::from(filter.limit.unwrap_or(50));
        if !(1..=200).contains(&limit) {
            return Err(invalid("limit", "must be 1 to 200"));
        }
        let (order, after) = shared_db::paging::continue_from(filter.cursor.as_deref(), filter.order)
            .map_err(|e| invalid("cursor", e.to_string()))?;
        let mut conn = self.pool.get().await?;
        let rows: Vec<(LicenseRow, i64)> = with_conn!(&mut *conn, |c| {
            let mut q = licenses::table
                .select((LicenseRow::as_select(), machine_count()))
                .into_boxed();
            if let Some(p) = filter.product {
                q = q.filter(licenses::product.eq(p.as_str()));
            }
            // `expired` is not stored: it is an active licence past its expiry.
            let now = shared_db::now();
            match filter.status {
                Some(LicenseStatus::Expired) => {
                    q = q.filter(
                        licenses::status
                            .eq(LicenseStatus::Active.as_str())
                            .and(licenses::expires_at.le(now)),
                    );
                }
                Some(LicenseStatus::Active) => {
                    q = q.filter(
                        licenses::status
                            .eq(LicenseStatus::Active.as_str())
                            .and(licenses::expires_at.is_null().or(licenses::expires_at.gt(now))),
                    );
                }
                Some(s) => q = q.filter(licenses::status.eq(s.as_str())),
                None => {}
            }
            if let Some(o) = &filter.owner_email {
                q = q.filter(licenses::owner_email.eq(o.trim()));
            }
            if let Some(t) = filter.expires_before {
                q = q.filter(licenses::expires_at.lt(t.naive_utc()));
            }
            shared_db::page_in_order!(q, licenses::id, order, &after)
                .limit(limit + 1)
                .load(c)
                .await
        })?;
        let more = rows.len() as i64 > limit;
        let mut items = Vec::with_capacity(rows.len());
        for (row, count) in rows.into_iter().take(limit as usize) {
            items.push(row.into_license(count)?);
        }
        let next_cursor = more
            .then(|| {
                items
                    .last()
                    .map(|l: &License| shared_db::paging::encode_ordered(order, &l.id))
            })
            .flatten();
        Ok(LicensePage { items, next_cursor })
    }

    /// Changes a licence's attributes.
    pub async fn update(&self, id: &str, patch: LicensePatch, actor: &str) -> Result<License, LicenseError> {
        let name = patch.name.as_deref().map(check_name).transpose()?;
        let email = patch.owner_email.as_deref().map(check_email).transpose()?;
        let expires = patch.expires_at.map(|t| t.map(|t| t.naive_utc().trunc_subsecs(6)));
        let max = patch.max_machines.map(check_max_machines).transpose()?;
        let entitlements = patch.entitlements.as_deref().map(check_entitlements).transpose()?;
        let metadata = patch.metadata.as_ref().map(check_metadata).transpose()?;
        let heartbeat = patch.heartbeat_interval_secs.map(check_heartbeat).transpose()?;
        let require_machine = patch.require_machine;
        let changed: Vec<&str> = [
            ("name", name.is_some()),
            ("owner_email", email.is_some()),
            ("expires_at", expires.is_some()),
            ("max_machines", max.is_some()),
            ("entitlements", entitlements.is_some()),
            ("metadata", metadata.is_some()),
            ("require_machine", require_machine.is_some()),
            ("heartbeat_interval_secs", heartbeat.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect();
        if changed.is_empty() {
            return Err(invalid("body", "give at least one field to change"));
        }
        self.change(id, actor, move |mut row| {
            if let Some(v) = name {
                row.name = v;
            }
            if let Some(v) = email {
                row.owner_email = v;
            }
            if let Some(v) = expires {
                row.expires_at = v;
            }
            if let Some(v) = max {
                row.max_machines = v;
            }
            if let Some(v) = entitlements {
                row.entitlements = v;
            }
            if let Some(v) = metadata {
                row.metadata = v;
            }
            if let Some(v) = require_machine {
                row.require_machine = v;
            }
            if let Some(v) = heartbeat {
                row.heartbeat_interval_secs = v;
            }
            Ok((row, "license.updated", serde_json::json!({ "fields": changed })))
        })
        .await
    }

    /// `active` → `suspended`.
    pub async fn suspend(&self, id: &str, actor: &str) -> Result<License, LicenseError> {
        self.transition(
            id,
            actor,
            "suspend",
            &[LicenseStatus::Active],
            LicenseStatus::Suspended,
            "license.suspended",
        )
        .await
    }

    /// `suspended` → `active`.
    pub async fn reinstate(&self, id: &str, actor: &str) -> Result<License, LicenseError> {
        self.transition(
            id,
            actor,
            "reinstate",
            &[LicenseStatus::Suspended],
            LicenseStatus::Active,
            "license.reinstated",
        )
        .await
    }

    /// `active` or `suspended` → `revoked` (final).
    pub async fn revoke(&self, id: &str, actor: &str) -> Result<License, LicenseError> {
        self.transition(
            id,
            actor,
            "revoke",
            &[LicenseStatus::Active, LicenseStatus::Suspended],
            LicenseStatus::Revoked,
            "license.revoked",
        )
        .await
    }

    async fn transition(
        &self,
        id: &str,
        actor: &str,
        action: &'static str,
        from: &'static [LicenseStatus],
        to: LicenseStatus,
        event: &'static str,
    ) -> Result<License, LicenseError> {
        self.change(id, actor, move |mut row| {
            let current = row.status();
            if !from.contains(&current) {
                return Err(LicenseError::InvalidTransition {
                    action,
                    from: current.as_str(),
                });
            }
            row.status = to.as_str().to_owned();
            Ok((
                row,
                event,
                serde_json::json!({ "from": current.as_str(), "to": to.as_str() }),
            ))
        })
        .await
    }

    /// Extends the expiry by a duration (from the later of now and the current expiry)
    /// or sets it; a revoked licence cannot be renewed.
    pub async fn renew(&self, id: &str, renew: Renew, actor: &str) -> Result<License, LicenseError> {
        let by = match (renew.duration.as_deref(), renew.expires_at) {
            (Some(d), None) => Ok(parse_duration("duration", d)?),
            (None, Some(t)) => Err(future("expires_at", t)?),
            _ => {
                return Err(invalid("duration", "give exactly one of duration and expires_at"));
            }
        };
        self.change(id, actor, move |mut row| {
            if row.status() == LicenseStatus::Revoked {
                return Err(LicenseError::InvalidTransition {
                    action: "renew",
                    from: "revoked",
                });
            }
            let before = row.expires_at;
            let now = shared_db::now();
            row.expires_at = Some(match by {
                Ok(d) => before.map_or(now, |t| t.max(now)) + d,
                Err(t) => t,
            });
            let data = serde_json::json!({
                "from": before.map(|t| shared_db::time::rfc3339_micros::format(&t)),
                "to": row.expires_at.map(|t| shared_db::time::rfc3339_micros::format(&t)),
            });
            Ok((row, "license.renewed", data))
        })
        .await
    }

    /// Loads licence `id` locked for update, applies `f`, stores the result and records
    /// the event `f` names, all in one transaction.
    async fn change<F>(&self, id: &str, actor: &str, f: F) -> Result<License, LicenseError>
    where
        F: FnOnce(LicenseRow) -> Result<(LicenseRow, &'static str, serde_json::Value), LicenseError> + Send,
    {
        let id = id.to_owned();
        let actor = actor.to_owned();
        let mut conn = self.pool.get().await?;
        let (row, count) = conn
            .transaction::<_, LicenseError, _>(async move |c| {
                let row = lock(c, &id).await?.ok_or(LicenseError::NotFound)?;
                let (mut row, event, data) = f(row)?;
                row.updated_at = shared_db::now();
                with_conn!(&mut *c, |c| diesel::update(licenses::table.find(&row.id))
                    .set(&row)
                    .execute(c)
                    .await)?;
                record(c, event, &actor, &row.id, data).await?;
                let count = count_machines(c, &row.id).await?;
                Ok((row, count))
            })
            .await?;
        row.into_license(count)
    }

    /// Validates a key, in the order documented on [`ValidationCode`]. Never an error
    /// for a bad key: that is a `NOT_FOUND` outcome.
    pub async fn validate(&self, req: &ValidateRequest) -> Result<Validation, LicenseError> {
        let Ok(key) = LicenseKey::parse(&req.key) else {
            return Ok(Validation {
                valid: false,
                code: ValidationCode::NotFound,
                detail: "the key is malformed (wrong length, symbols or check symbols)".into(),
                license: None,
            });
        };
        let Some((row, count)) = self.find_key(&key).await? else {
            return Ok(Validation {
                valid: false,
                code: ValidationCode::NotFound,
                detail: "no licence has this key".into(),
                license: None,
            });
        };
        let machine = match &req.fingerprint {
            Some(f) => self.find_machine(&row.id, f.trim()).await?,
            None => None,
        };
        let now = shared_db::now();
        let (code, detail) = evaluate(&row, count, machine.as_ref(), req, now);
        let mut row = row;
        if row
            .last_validated_at
            .is_none_or(|t| now - t >= chrono::Duration::seconds(VALIDATED_AT_RESOLUTION_SECS))
        {
            let mut conn = self.pool.get().await?;
            with_conn!(&mut *conn, |c| diesel::update(licenses::table.find(&row.id))
                .set(licenses::last_validated_at.eq(Some(now)))
                .execute(c)
                .await)?;
            row.last_validated_at = Some(now);
        }
        Ok(Validation {
            valid: code == ValidationCode::Valid,
            code,
            detail,
            license: Some(row.into_license(count)?),
        })
    }

    /// Opens the licence a holder's key names, or refuses the key.
    async fn open(&self, key: &str) -> Result<(LicenseRow, i64), LicenseError> {
        let key = LicenseKey::parse(key).map_err(|e| LicenseError::KeyInvalid(e.to_string()))?;
        self.find_key(&key)
            .await?
            .ok_or_else(|| LicenseError::KeyInvalid("no licence has this key".into()))
    }

    /// Activates a machine on the licence the key opens, within its machine limit.
    pub async fn activate(&self, req: &ActivateRequest) -> Result<Machine, LicenseError> {
        let fingerprint = check_fingerprint(&req.fingerprint)?;
        let name = check_optional("name", &req.name, 200)?;
        let platform = check_optional("platform", &req.platform, 100)?;
        let hostname = check_optional("hostname", &req.hostname, 255)?;
        let (row, _) = self.open(&req.key).await?;
        let mut conn = self.pool.get().await?;
        let now = shared_db::now();
        refuse_unusable(&row, now)?;
        let license_id = row.id.clone();
        let machine = conn
            .transaction::<_, LicenseError, _>(async move |c| {
                // Lock the licence so concurrent activations count machines one at a time.
                let row = lock(c, &license_id).await?.ok_or(LicenseError::NotFound)?;
                if find_machine(c, &row.id, &fingerprint).await?.is_some() {
                    return Err(LicenseError::MachineExists);
                }
                let count = count_machines(c, &row.id).await?;
                if let Some(max) = row.max_machines
                    && count >= i64::from(max)
                {
                    return Err(LicenseError::NotValid {
                        code: ValidationCode::TooManyMachines,
                        detail: format!("the licence allows {max} machine(s) and {count} are activated"),
                    });
                }
                let machine = MachineRow {
                    id: shared_db::new_id(),
                    license_id: row.id.clone(),
                    fingerprint,
                    name,
                    platform,
                    hostname,
                    created_at: now,
                    last_heartbeat_at: Some(now),
                };
                with_conn!(&mut *c, |c| diesel::insert_into(machines::table)
                    .values(&machine)
                    .execute(c)
                    .await)?;
                let actor = format!("license:{}", row.id);
                record(
                    c,
                    "license.activated",
                    &actor,
                    &row.id,
                    serde_json::json!({
                        "machine_id": machine.id, "fingerprint": machine.fingerprint,
                    }),
                )
                .await?;
                Ok(machine)
            })
            .await?;
        Ok(machine.into())
    }

    /// Removes a machine from the licence the key opens.
    pub async fn deactivate(&self, req: &MachineRequest) -> Result<(), LicenseError> {
        let (row, _) = self.open(&req.key).await?;
        let machine = self
            .find_machine(&row.id, req.fingerprint.trim())
            .await?
            .ok_or(LicenseError::MachineNotFound)?;
        let mut conn = self.pool.get().await?;
        delete_machine(&mut conn, &row.id, &machine, &format!("license:{}", row.id)).await
    }

    /// Records that the machine is alive. A revoked, suspended or expired licence answers
    /// as activation and validation do (its code), and nothing is recorded: a client that
    /// only heartbeats learns of it at its next beat.
    pub async fn heartbeat(&self, req: &MachineRequest) -> Result<Machine, LicenseError> {
        let (row, _) = self.open(&req.key).await?;
        refuse_unusable(&row, shared_db::now())?;
        let mut machine = self
            .find_machine(&row.id, req.fingerprint.trim())
            .await?
            .ok_or(LicenseError::MachineNotFound)?;
        let mut conn = self.pool.get().await?;
        let now = shared_db::now();
        with_conn!(&mut *conn, |c| diesel::update(machines::table.find(&machine.id))
            .set(machines::last_heartbeat_at.eq(Some(now)))
            .execute(c)
            .await)?;
        machine.last_heartbeat_at = Some(now);
        Ok(machine.into())
    }

    /// The machines activated on licence `id`, newest first.
    pub async fn machines(&self, id: &str) -> Result<Vec<Machine>, LicenseError> {
        let mut conn = self.pool.get().await?;
        find(&mut conn, id).await?.ok_or(LicenseError::NotFound)?;
        let rows: Vec<MachineRow> = with_conn!(&mut *conn, |c| machines::table
            .filter(machines::license_id.eq(id))
            .order(machines::id.desc())
            .select(MachineRow::as_select())
            .load(c)
            .await)?;
        Ok(rows.into_iter().map(Machine::from).collect())
    }

    /// Removes machine `machine_id` from licence `id` (administration).
    pub async fn remove_machine(&self, id: &str, machine_id: &str, actor: &str) -> Result<(), LicenseError> {
        let mut conn = self.pool.get().await?;
        let machine: MachineRow = with_conn!(&mut *conn, |c| machines::table
            .filter(machines::license_id.eq(id))
            .filter(machines::id.eq(machine_id))
            .select(MachineRow::as_select())
            .first(c)
            .await
            .optional())?
        .ok_or(LicenseError::MachineNotFound)?;
        delete_machine(&mut conn, id, &machine, actor).await
    }

    /// Signs an offline certificate for a licence that validates now (bound to the
    /// machine when a fingerprint is given).
    pub async fn checkout(&self, req: &CheckoutRequest) -> Result<Checkout, LicenseError> {
        let ttl = match &req.ttl {
            Some(t) => parse_duration("ttl", t)?,
            None => chrono::Duration::days(DEFAULT_TTL_DAYS),
        };
        if ttl > chrono::Duration::days(MAX_TTL_DAYS) || ttl < chrono::Duration::minutes(1) {
            return Err(invalid("ttl", "must be between 1 minute and 366 days"));
        }
        let validation = self
            .validate(&ValidateRequest {
                key: req.key.clone(),
                fingerprint: req.fingerprint.clone(),
                product: None,
                entitlements: Vec::new(),
            })
            .await?;
        let license = match validation {
            Validation {
                code: ValidationCode::NotFound,
                detail,
                ..
            } => return Err(LicenseError::KeyInvalid(detail)),
            Validation {
                valid: true,
                license: Some(l),
                ..
            } => l,
            Validation { code, detail, .. } => return Err(LicenseError::NotValid { code, detail }),
        };
        let now = Utc::now().trunc_subsecs(0);
        let payload = CertificatePayload {
            license_id: license.id.clone(),
            product: license.product.as_str().to_owned(),
            name: license.name.clone(),
            entitlements: license.entitlements.clone(),
            license_expires_at: license.expires_at,
            fingerprint: req.fingerprint.as_ref().map(|f| f.trim().to_owned()),
            issued_at: now,
            expires_at: now + ttl,
        };
        let signer = self.signer().await?;
        let certificate = signer
            .sign(&payload)
            .map_err(|e| LicenseError::Signing(e.to_string()))?;
        let mut conn = self.pool.get().await?;
        record(
            &mut conn,
            "license.checked_out",
            &format!("license:{}", license.id),
            &license.id,
            serde_json::json!({
                "fingerprint": payload.fingerprint, "expires_at": shared_db::time::rfc3339_micros::format(&payload.expires_at), "kid": signer.kid(),
            }),
        )
        .await?;
        Ok(Checkout {
            certificate,
            kid: signer.kid().to_owned(),
            payload,
        })
    }
}

async fn record(
    conn: &mut DbConn,
    event_type: &str,
    actor: &str,
    license_id: &str,
    data: serde_json::Value,
) -> Result<(), LicenseError> {
    Ok(events::record(conn, event_type, actor, &format!("license:{license_id}"), data).await?)
}

async fn find(conn: &mut DbConn, id: &str) -> Result<Option<(LicenseRow, i64)>, LicenseError> {
    Ok(with_conn!(conn, |c| licenses::table
        .find(id)
        .select((LicenseRow::as_select(), machine_count()))
        .first(c)
        .await
        .optional())?)
}

/// Pads a batch to the next power of two (repeating its last key), so a connection
/// prepares at most a handful of statement shapes and keeps them cached.
fn padded<T>(keys: &[T]) -> impl Iterator<Item = &T> {
    let len = keys.len().next_power_of_two();
    keys.iter()
        .chain(std::iter::repeat_n(keys.last(), len - keys.len()).flatten())
}

/// The licences with any of `digests`, with their machine counts, in one statement.
async fn find_by_digests(conn: &mut DbConn, digests: &[String]) -> Result<Vec<(LicenseRow, i64)>, DbError> {
    macro_rules! load {
        ($c:expr, $db:ty) => {{
            let mut q = licenses::table
                .select((LicenseRow::as_select(), machine_count()))
                .into_boxed::<'_, $db>();
            for d in padded(digests) {
                q = q.or_filter(licenses::key_digest.eq(d));
            }
            q.load::<(LicenseRow, i64)>($c).await?
        }};
    }
    Ok(match conn {
        DbConn::Mysql(c) => load!(c, diesel::mysql::Mysql),
        DbConn::Sqlite(c) => load!(c, diesel::sqlite::Sqlite),
    })
}

/// The machines matching any of the (licence id, fingerprint) `pairs`, in one statement.
async fn find_machines(conn: &mut DbConn, pairs: &[(String, String)]) -> Result<Vec<MachineRow>, DbError> {
    macro_rules! load {
        ($c:expr, $db:ty) => {{
            let mut q = machines::table.select(MachineRow::as_select()).into_boxed::<'_, $db>();
            for (license_id, fingerprint) in padded(pairs) {
                q = q.or_filter(
                    machines::license_id
                        .eq(license_id)
                        .and(machines::fingerprint.eq(fingerprint)),
                );
            }
            q.load::<MachineRow>($c).await?
        }};
    }
    Ok(match conn {
        DbConn::Mysql(c) => load!(c, diesel::mysql::Mysql),
        DbConn::Sqlite(c) => load!(c, diesel::sqlite::Sqlite),
    })
}

async fn find_by_digest(conn: &mut DbConn, digest: &str) -> Result<Option<(LicenseRow, i64)>, LicenseError> {
    Ok(with_conn!(conn, |c| licenses::table
        .filter(licenses::key_digest.eq(digest))
        .select((LicenseRow::as_select(), machine_count()))
        .first(c)
        .await
        .optional())?)
}

/// The licence row, locked until the transaction ends (MySQL `FOR UPDATE`; SQLite's
/// `BEGIN IMMEDIATE` already serialises writers).
async fn lock(conn: &mut DbConn, id: &str) -> Result<Option<LicenseRow>, LicenseError> {
    Ok(match conn {
        DbConn::Mysql(c) => licenses::table
            .find(id)
            .select(LicenseRow::as_select())
            .for_update()
            .first(c)
            .await
            .optional()?,
        DbConn::Sqlite(c) => licenses::table
            .find(id)
            .select(LicenseRow::as_select())
            .first(c)
            .await
            .optional()?,
    })
}

async fn count_machines(conn: &mut DbConn, license_id: &str) -> Result<i64, LicenseError> {
    Ok(with_conn!(conn, |c| machines::table
        .filter(machines::license_id.eq(license_id))
        .count()
        .get_result::<i64>(c)
        .await)?)
}

async fn find_machine(
    conn: &mut DbConn,
    license_id: &str,
    fingerprint: &str,
) -> Result<Option<MachineRow>, LicenseError> {
    Ok(with_conn!(conn, |c| machines::table
        .filter(machines::license_id.eq(license_id))
        .filter(machines::fingerprint.eq(fingerprint))
        .select(MachineRow::as_select())
        .first(c)
        .await
        .optional())?)
}

async fn delete_machine(
    conn: &mut DbConn,
    license_id: &str,
    machine: &MachineRow,
    actor: &str,
) -> Result<(), LicenseError> {
    let machine = machine.clone();
    let license_id = license_id.to_owned();
    let actor = actor.to_owned();
    conn.transaction::<_, LicenseError, _>(async move |c| {
        with_conn!(&mut *c, |c| diesel::delete(machines::table.find(&machine.id))
            .execute(c)
            .await)?;
        record(
            c,
            "license.deactivated",
            &actor,
            &license_id,
            serde_json::json!({
                "machine_id": machine.id, "fingerprint": machine.fingerprint,
            }),
        )
        .await
    })
    .await
}

const SEALING_PURPOSE: &[u8] = b"license signing key";

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
async fn load_or_create_signer(
    pool: &DbPool,
    secret: &[u8],
    previous: &[(hmac::Key, Arc<[u8]>)],
) -> Result<Signer, LicenseError> {
    let derive = |s: &[u8]| Sealer::new(s, SEALING_PURPOSE).map_err(|_| LicenseError::Signing("key derivation".into()));
    let sealer = derive(secret)?;
    let mut conn = pool.get().await?;
    for _ in 0..2 {
        let stored: Option<SigningKeyRow> = with_conn!(&mut *conn, |c| signing_keys::table
            .order((signing_keys::created_at.desc(), signing_keys::kid.desc()))
            .first(c)
            .await
            .optional())?;
        if let Some(row) = stored {
            let mut opened = sealer.open(&row.private_key_sealed, &row.kid).ok();
            if opened.is_none() {
                for (_, old) in previous {
                    if let Ok(pkcs8) = derive(old)?.open(&row.private_key_sealed, &row.kid) {
                        let resealed = sealer
                            .seal(&pkcs8, &row.kid)
                            .map_err(|_| LicenseError::Signing("sealing".into()))?;
                        with_conn!(&mut *conn, |c| diesel::update(signing_keys::table.find(&row.kid))
                            .set(signing_keys::private_key_sealed.eq(&resealed))
                            .execute(c)
                            .await)?;
                        tracing::info!(kid = %row.kid, "sealed the licence signing key again under the new SECRET_KEY");
                        opened = Some(pkcs8);
                        break;
                    }
                }
            }
            let pkcs8 = opened.ok_or_else(|| {
                LicenseError::Signing(format!(
                    "the stored key `{}` cannot be opened with this SECRET_KEY (was SECRET_KEY changed? keep the old one in SECRET_KEY_PREVIOUS)",
                    row.kid
                ))
            })?;
            return Signer::from_pkcs8(&pkcs8).map_err(|_| LicenseError::Signing("stored key is not Ed25519".into()));
        }
        store_new_signer(&mut conn, &sealer).await?;
    }
    Err(LicenseError::Signing("could not store a signing key".into()))
}

/// Generates a signing key and stores it sealed under `sealer`.
async fn store_new_signer(conn: &mut DbConn, sealer: &Sealer) -> Result<Signer, LicenseError> {
    {
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
        with_conn!(&mut *conn, |c| diesel::insert_into(signing_keys::table)
            .values(&row)
            .execute(c)
            .await)?;
        tracing::info!(kid = %row.kid, "generated a licence signing key");
        Ok(signer)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn durations_parse_or_name_the_field() {
        assert_eq!(parse_duration("duration", "30d").unwrap(), chrono::Duration::days(30));
        assert_eq!(parse_duration("duration", "12h").unwrap(), chrono::Duration::hours(12));
        assert!(parse_duration("duration", "1y").unwrap() > chrono::Duration::days(365));
        for bad in ["", "soon", "0s", "-1d", "200y"] {
            match parse_duration("ttl", bad) {
                Err(LicenseError::Invalid { field, .. }) => assert_eq!(field, "ttl"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
