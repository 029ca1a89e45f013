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

fn issue(product: Product) -> IssueLicense {
    IssueLicense {
        product,
        name: "Acme Corp".into(),
        owner_email: "it@acme.example".into(),
        expires_at: None,
        duration: Some("365d".into()),
        max_machines: Some(2),
        entitlements: vec!["sso".into(), "export".into()],
        metadata: serde_json::Map::new(),
        require_machine: false,
        heartbeat_interval_secs: None,
        heartbeat_cull: None,
        heartbeat_resurrection_secs: None,
        grace_period: None,
        expiry_strategy: None,
        expiry_basis: None,
        policy_id: None,
    }
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

/// Runs `sql` with one timestamp bound (time travel for tests).
async fn exec_at(db: &TestDb, sql: &str, at: chrono::NaiveDateTime) {
    let mut conn = db.pool.get().await.unwrap();
    with_conn!(&mut *conn, |c| diesel::sql_query(sql)
        .bind::<diesel::sql_types::Timestamp, _>(at)
        .execute(c)
        .await)
    .unwrap();
}
