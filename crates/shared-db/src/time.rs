//! Timestamps as stored: UTC, truncated to microseconds (`DATETIME(6)`).

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};

/// The current UTC time at the precision the database keeps.
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

/// `t` as a UTC `DateTime`, for APIs.
pub fn to_utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// A fresh, time-ordered identifier (UUIDv7, hyphenated).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
