//! The licence rules against real databases (SQLite always, MariaDB when reachable).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use license_core::cert::{Expect, Verifier, VerifyError};
use license_core::key::LicenseKey;
use license_core::model::*;
use license_core::{LicenseError, LicenseService};
use shared_db::testing::TestDb;
use shared_db::{KeyRing, events, with_conn};

mod depth;
mod import;
mod keys;
mod lifecycle;
mod machines;
mod validation;

const SECRET: &[u8] = b"license-test-secret-0123456789ab";

/// The request as the API reads it: the fields not named here take their defaults.
fn issue(product: Product) -> IssueLicense {
    serde_json::from_value(serde_json::json!({
        "product": product,
        "name": "Acme Corp",
        "owner_email": "it@acme.example",
        "duration": "365d",
        "max_machines": 2,
        "entitlements": ["sso", "export"],
    }))
    .unwrap()
}

fn validate(key: &LicenseKey) -> ValidateRequest {
    ValidateRequest {
        key: key.as_str().into(),
        fingerprint: None,
        product: None,
        entitlements: vec![],
        nonce: None,
    }
}

fn activate(key: &LicenseKey, fingerprint: &str) -> ActivateRequest {
    ActivateRequest {
        key: key.as_str().into(),
        fingerprint: fingerprint.into(),
        name: None,
        platform: None,
        hostname: None,
        nonce: None,
    }
}

async fn services() -> Vec<(TestDb, LicenseService)> {
    let mut out = Vec::new();
    for db in TestDb::each().await {
        let svc = LicenseService::new(db.pool.clone(), KeyRing::new(SECRET, &[]), None).unwrap();
        svc.signer().await.unwrap();
        out.push((db, svc));
    }
    out
}

/// The events of `event_type` (oldest first).
async fn events_of(db: &TestDb, event_type: &str) -> Vec<shared_db::events::Event> {
    let mut conn = db.pool.get().await.unwrap();
    let filter = events::EventFilter {
        event_type: Some(event_type.into()),
        limit: 500,
        ..Default::default()
    };
    let mut all = events::list(&mut conn, &filter).await.unwrap();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    all
}

/// Renewal by a duration such as `30d`.
fn renew_by(duration: &str) -> Renew {
    Renew {
        duration: Some(duration.into()),
        expires_at: None,
    }
}

/// Moves licence `id`'s expiry to `at`, behind the service's back.
async fn set_expiry(db: &TestDb, id: &str, at: chrono::NaiveDateTime) {
    exec_at(
        db,
        &format!("UPDATE eb_licenses SET expires_at = ? WHERE id = '{id}'"),
        at,
    )
    .await;
}

/// Runs `sql` with one timestamp bound (time travel for tests).
async fn exec_at(db: &TestDb, sql: &str, at: chrono::NaiveDateTime) {
    let mut conn = db.pool.get().await.unwrap();
    with_conn!(&mut *conn, |c| diesel::sql_query(sql)
        .bind::<diesel::sql_types::Timestamp, _>(at)
        .execute(c)
        .await)
    .unwrap();
}
