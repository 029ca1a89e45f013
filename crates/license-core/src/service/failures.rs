//! Failed validations as audit events, coalesced: the first failure of a licence with a
//! code is recorded at once; those that follow within a minute are counted and recorded
//! as one event when the minute is over (by the next such failure, or by the sweep), so
//! a client retrying in a loop writes two events a minute, not thousands.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{LicenseService, record};
use crate::model::ValidationCode;

/// How long failures of one licence with one code are gathered into one event.
pub(super) const WINDOW: Duration = Duration::from_secs(60);

/// Licence-and-code windows kept at most; past this, failures are recorded one by one
/// (only many distinct valid keys could get here).
const MAX_WINDOWS: usize = 10_000;

/// The subject of failures for keys that open no licence.
const UNKNOWN: &str = "unknown";

/// Open windows by (licence id, or "" for an unknown key; code).
#[derive(Default)]
pub(super) struct FailureLog {
    windows: Mutex<HashMap<(String, ValidationCode), Window>>,
}

struct Window {
    opened: Instant,
    /// Failures since the window opened that are not recorded yet.
    pending: u64,
    detail: String,
    fingerprint: Option<String>,
}

/// One `license.validation.failed` event to record.
pub(super) struct Failure {
    license_id: String,
    code: ValidationCode,
    count: u64,
    detail: String,
    fingerprint: Option<String>,
}

impl FailureLog {
    /// Notes a failure at `now`; the event to record now, if one is due.
    fn note(
        &self,
        license_id: Option<&str>,
        code: ValidationCode,
        detail: &str,
        fingerprint: Option<&str>,
        now: Instant,
    ) -> Option<Failure> {
        let id = license_id.unwrap_or_default();
        let failure = |count| Failure {
            license_id: id.to_owned(),
            code,
            count,
            detail: detail.to_owned(),
            fingerprint: fingerprint.map(str::to_owned),
        };
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (id.to_owned(), code);
        match windows.get_mut(&key) {
            Some(w) if now.duration_since(w.opened) < WINDOW => {
                w.pending += 1;
                detail.clone_into(&mut w.detail);
                w.fingerprint = fingerprint.map(str::to_owned);
                None
            }
            Some(w) => {
                let count = w.pending + 1;
                w.opened = now;
                w.pending = 0;
                Some(failure(count))
            }
            None => {
                if windows.len() < MAX_WINDOWS {
                    windows.insert(
                        key,
                        Window {
                            opened: now,
                            pending: 0,
                            detail: detail.to_owned(),
                            fingerprint: fingerprint.map(str::to_owned),
                        },
                    );
                }
                Some(failure(1))
            }
        }
    }

    /// Closes the windows that are over at `now`: the failures they still hold.
    fn due(&self, now: Instant) -> Vec<Failure> {
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = Vec::new();
        windows.retain(|(id, code), w| {
            if now.duration_since(w.opened) < WINDOW {
                return true;
            }
            if w.pending > 0 {
                out.push(Failure {
                    license_id: id.clone(),
                    code: *code,
                    count: w.pending,
                    detail: std::mem::take(&mut w.detail),
                    fingerprint: w.fingerprint.take(),
                });
            }
            false
        });
        out
    }
}

impl LicenseService {
    /// Notes a failed validation; records its event when one is due. A database that
    /// cannot take the event does not fail the validation (it is logged).
    pub(super) async fn validation_failed(
        &self,
        license_id: Option<&str>,
        code: ValidationCode,
        detail: &str,
        fingerprint: Option<&str>,
    ) {
        if let Some(f) = self
            .failures
            .note(license_id, code, detail, fingerprint, Instant::now())
        {
            self.record_failures(vec![f]).await;
        }
    }

    /// Records the failures whose windows are over (the sweep calls this); how many
    /// events were written.
    pub(super) async fn flush_failures(&self) -> usize {
        let due = self.failures.due(Instant::now());
        let n = due.len();
        self.record_failures(due).await;
        n
    }

    /// Records every failure held back, over or not (at shutdown).
    pub async fn flush_failed_validations(&self) {
        let due = self.failures.due(Instant::now() + WINDOW);
        self.record_failures(due).await;
    }

    async fn record_failures(&self, failures: Vec<Failure>) {
        if failures.is_empty() {
            return;
        }
        let mut conn = match self.pool.get().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, lost = failures.len(), "could not record failed validations");
                return;
            }
        };
        for f in failures {
            let (subject, actor) = if f.license_id.is_empty() {
                (UNKNOWN.to_owned(), "anonymous".to_owned())
            } else {
                (f.license_id.clone(), format!("license:{}", f.license_id))
            };
            let data = serde_json::json!({
                "code": f.code.as_str(), "count": f.count, "detail": f.detail, "fingerprint": f.fingerprint,
            });
            if let Err(e) = shared_db::retrying!(
                record(&mut conn, "license.validation.failed", &actor, &subject, data.clone()).await
            ) {
                tracing::warn!(error = %e, license = %subject, code = f.code.as_str(), "could not record a failed validation");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn failures_in_a_window_become_one_event_and_none_is_lost() {
        let log = FailureLog::default();
        let t0 = Instant::now();
        let code = ValidationCode::Expired;
        // The first is recorded at once.
        assert_eq!(log.note(Some("a"), code, "d", None, t0).unwrap().count, 1);
        // The next 99 within the minute are held.
        for i in 1..100 {
            assert!(
                log.note(Some("a"), code, "d", Some("fp"), t0 + Duration::from_millis(i * 100))
                    .is_none()
            );
        }
        // Another licence or another code has its own window.
        assert_eq!(log.note(Some("b"), code, "d", None, t0).unwrap().count, 1);
        assert_eq!(
            log.note(Some("a"), ValidationCode::Suspended, "d", None, t0)
                .unwrap()
                .count,
            1
        );
        // Nothing is due before the minute is over.
        assert!(log.due(t0 + Duration::from_secs(30)).is_empty());
        // Over: the 99 held become one event (the windows with nothing held just close).
        let due = log.due(t0 + WINDOW);
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].license_id.as_str(), due[0].count), ("a", 99));
        assert_eq!(due[0].fingerprint.as_deref(), Some("fp"));
        assert!(log.due(t0 + WINDOW * 2).is_empty());
        // A failure after a window is over, before the sweep, records the held ones with it.
        let t1 = t0 + WINDOW * 3;
        assert_eq!(log.note(Some("c"), code, "d", None, t1).unwrap().count, 1);
        assert!(log.note(Some("c"), code, "d", None, t1).is_none());
        assert_eq!(log.note(Some("c"), code, "d", None, t1 + WINDOW).unwrap().count, 2);
    }
}
