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

#[cfg(test)]
mod id_tests {
    #[test]
    fn an_id_made_at_or_after_a_time_sorts_at_or_after_its_floor() {
        let before = super::now() - chrono::Duration::milliseconds(2);
        let id = super::new_id();
        let after = super::now() + chrono::Duration::milliseconds(2);
        assert!(super::id_floor(before) <= id, "{id}");
        assert!(super::id_floor(after) > id, "{id}");
        assert_eq!(super::id_floor(before).len(), id.len());
    }
}

/// The smallest [`new_id`] that can be made at or after `at`: ids compare (as text) in
/// time order, so `id >= id_floor(t)` finds the rows made since `t` through the primary
/// key, without an index on their time.
pub fn id_floor(at: NaiveDateTime) -> String {
    let ms = u64::try_from(at.and_utc().timestamp_millis()).unwrap_or(0);
    format!("{:08x}-{:04x}-7000-8000-000000000000", ms >> 16, ms & 0xffff)
}

/// One format for every timestamp a response shows: RFC 3339 in UTC with a `Z` and
/// exactly six fractional digits (the microseconds `DATETIME(6)` keeps), such as
/// `2026-12-02T15:53:36.123456Z`. chrono alone writes 0, 3, 6 or 9 digits depending on
/// the value, and a `NaiveDateTime` without any offset. Reading accepts any RFC 3339 time
/// (any offset, any number of digits).
///
/// Use with `#[serde(with = "shared_db::time::rfc3339_micros")]` on `DateTime<Utc>` or
/// `NaiveDateTime` (taken as UTC) fields, and `rfc3339_micros::option` on `Option`s.
pub mod rfc3339_micros {
    use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// A time this format can write and read.
    pub trait Instant: Sized {
        /// As a UTC time.
        fn to_utc(&self) -> DateTime<Utc>;
        /// From a UTC time.
        fn from_utc(t: DateTime<Utc>) -> Self;
    }

    impl Instant for DateTime<Utc> {
        fn to_utc(&self) -> DateTime<Utc> {
            *self
        }

        fn from_utc(t: DateTime<Utc>) -> Self {
            t
        }
    }

    impl Instant for NaiveDateTime {
        fn to_utc(&self) -> DateTime<Utc> {
            self.and_utc()
        }

        fn from_utc(t: DateTime<Utc>) -> Self {
            t.naive_utc()
        }
    }

    /// `t` in the one format (`2026-12-02T15:53:36.123456Z`; nanoseconds are cut).
    pub fn format(t: &impl Instant) -> String {
        t.to_utc().to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    /// Parses any RFC 3339 time.
    pub fn parse<T: Instant>(s: &str) -> Result<T, chrono::ParseError> {
        DateTime::parse_from_rfc3339(s).map(|t| T::from_utc(t.with_timezone(&Utc)))
    }

    /// Writes `t` in the one format.
    pub fn serialize<S: Serializer, T: Instant>(t: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    /// Reads any RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>, T: Instant>(d: D) -> Result<T, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(|e| serde::de::Error::custom(format_args!("`{s}` is not an RFC 3339 time: {e}")))
    }

    /// The same for `Option`s: `None` is `null`.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        use super::Instant;

        /// Writes `t`, or `null`.
        pub fn serialize<S: Serializer, T: Instant>(t: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&super::format(t)),
                None => s.serialize_none(),
            }
        }

        /// Reads an RFC 3339 time or `null`.
        pub fn deserialize<'de, D: Deserializer<'de>, T: Instant>(d: D) -> Result<Option<T>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(s) => super::parse(&s)
                    .map(Some)
                    .map_err(|e| serde::de::Error::custom(format_args!("`{s}` is not an RFC 3339 time: {e}"))),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]
        use chrono::{NaiveDate, TimeZone};

        use super::*;

        #[test]
        fn always_six_digits_and_z() {
            let base = NaiveDate::from_ymd_opt(2026, 12, 2)
                .unwrap()
                .and_hms_opt(15, 53, 36)
                .unwrap();
            for (nanos, text) in [
                (0, "2026-12-02T15:53:36.000000Z"),
                (120_000_000, "2026-12-02T15:53:36.120000Z"),
                (123_456_000, "2026-12-02T15:53:36.123456Z"),
                (123_456_789, "2026-12-02T15:53:36.123456Z"),
            ] {
                let naive = base + chrono::Duration::nanoseconds(nanos);
                assert_eq!(format(&naive), text);
                assert_eq!(format(&Utc.from_utc_datetime(&naive)), text);
            }
        }

        #[test]
        fn reads_any_rfc3339() {
            let t: DateTime<Utc> = parse("2026-12-02T16:53:36+01:00").unwrap();
            assert_eq!(format(&t), "2026-12-02T15:53:36.000000Z");
            let t: NaiveDateTime = parse("2026-12-02T15:53:36.1Z").unwrap();
            assert_eq!(format(&t), "2026-12-02T15:53:36.100000Z");
            assert!(parse::<NaiveDateTime>("2026-12-02 15:53:36").is_err());
        }
    }
}
