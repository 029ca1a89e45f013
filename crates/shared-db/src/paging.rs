//! Paging, one way for every list: one limit rule ([`limit`]: 1 to [`MAX_LIMIT`],
//! [`DEFAULT_LIMIT`] when absent), one cursor codec (the position key, an id or object
//! key, in base64url; for lists in time order the direction too), one error
//! ([`PagingError`], which names the query parameter) and one way to cut a page
//! ([`page`]: fetch `limit + 1` rows, keep `limit`, and a cursor when there were more).
//!
//! The rule for every list: records in time (licences, emails, Slack messages, events,
//! deliveries, keys, rules, webhooks, machines) come newest first unless `order=asc`;
//! named things (templates, suppressions, documents, files) come in name order.

/// Which end of a list in time order comes first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Newest first (the default).
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

impl Order {
    /// `asc` or `desc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }
}

/// Records per page when the caller does not say.
pub const DEFAULT_LIMIT: u32 = 100;
/// The most records a page holds.
pub const MAX_LIMIT: u32 = 500;

/// Why a page request was refused: the query parameter and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PagingError {
    /// `limit` out of range.
    #[error("limit must be 1 to {MAX_LIMIT}")]
    Limit,
    /// `cursor` not accepted.
    #[error("{0}")]
    Cursor(#[from] CursorError),
}

impl PagingError {
    /// The query parameter at fault (`limit` or `cursor`).
    pub fn field(&self) -> &'static str {
        match self {
            PagingError::Limit => "limit",
            PagingError::Cursor(_) => "cursor",
        }
    }
}

/// The page size `requested` asks for: [`DEFAULT_LIMIT`] when absent, refused outside 1
/// to [`MAX_LIMIT`] (never silently clamped).
pub fn limit(requested: Option<u32>) -> Result<i64, PagingError> {
    let n = requested.unwrap_or(DEFAULT_LIMIT);
    if (1..=MAX_LIMIT).contains(&n) {
        Ok(i64::from(n))
    } else {
        Err(PagingError::Limit)
    }
}

/// The position a name-ordered list continues after (a cursor from [`encode`]).
pub fn after(cursor: Option<&str>) -> Result<Option<String>, PagingError> {
    cursor
        .map(|c| decode(c).ok_or(PagingError::Cursor(CursorError::Foreign)))
        .transpose()
}

/// Cuts a page from `rows`, fetched with `.limit(limit + 1)`: the first `limit` of them,
/// and the cursor (from `position` of the last kept row) when there were more.
pub fn page<T>(mut rows: Vec<T>, limit: i64, position: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
    let keep = usize::try_from(limit).unwrap_or(0);
    let more = rows.len() > keep;
    rows.truncate(keep);
    let next = if more { rows.last().map(position) } else { None };
    (rows, next)
}

/// Why a cursor was refused, in words for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not made by this API.
    #[error("not a cursor from this API")]
    Foreign,
    /// Made for the other order.
    #[error("this cursor continues a list in `{0}` order; repeat that `order` or start again without a cursor")]
    OtherOrder(&'static str),
}

/// The cursor for a page in `order` that ended at `id`.
pub fn encode_ordered(order: Order, id: &str) -> String {
    let mark = match order {
        Order::Desc => '<',
        Order::Asc => '>',
    };
    encode(&format!("{mark}{id}"))
}

/// The order and position a page continues from: `cursor`'s (made by [`encode_ordered`])
/// if given, else `order` (or newest first) from the start. An `order` that contradicts
/// the cursor's is refused rather than silently skipping or repeating records.
pub fn continue_from(cursor: Option<&str>, order: Option<Order>) -> Result<(Order, Option<String>), CursorError> {
    let Some(cursor) = cursor else {
        return Ok((order.unwrap_or_default(), None));
    };
    let raw = decode(cursor).ok_or(CursorError::Foreign)?;
    let (found, id) = match raw.split_at_checked(1) {
        Some(("<", id)) if !id.is_empty() => (Order::Desc, id),
        Some((">", id)) if !id.is_empty() => (Order::Asc, id),
        _ => return Err(CursorError::Foreign),
    };
    match order {
        Some(o) if o != found => Err(CursorError::OtherOrder(found.as_str())),
        _ => Ok((found, Some(id.to_owned()))),
    }
}

/// The cursor for a page that ended at `position`.
pub fn encode(position: &str) -> String {
    data_encoding::BASE64URL_NOPAD.encode(position.as_bytes())
}

/// The position a cursor from [`encode`] names; `None` for anything else.
pub fn decode(cursor: &str) -> Option<String> {
    data_encoding::BASE64URL_NOPAD
        .decode(cursor.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

/// Pages a boxed diesel query on its time-ordered key `$column` (ids sort by time): in
/// `$order`, after `$after` (the position from [`continue_from`]).
#[macro_export]
macro_rules! page_in_order {
    ($query:expr, $column:expr, $order:expr, $after:expr) => {{
        let q = $query;
        let q = match ($order, $after) {
            ($crate::paging::Order::Asc, Some(a)) => q.filter($column.gt(a)),
            ($crate::paging::Order::Desc, Some(a)) => q.filter($column.lt(a)),
            (_, None) => q,
        };
        match $order {
            $crate::paging::Order::Asc => q.order($column.asc()),
            $crate::paging::Order::Desc => q.order($column.desc()),
        }
    }};
}

/// A page request: the query parameters of a list in one order (`limit`, `cursor`).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size (1 to 500, default 100).
    pub limit: Option<u32>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_refuses_foreign_cursors() {
        assert_eq!(
            super::decode(&super::encode("photos/2026/사진.jpg")).as_deref(),
            Some("photos/2026/사진.jpg")
        );
        assert_eq!(super::decode("%%%"), None);
    }

    #[test]
    fn one_limit_rule_and_one_way_to_cut_a_page() {
        use super::{MAX_LIMIT, PagingError, after, encode, limit, page};
        assert_eq!(limit(None), Ok(100));
        assert_eq!(limit(Some(1)), Ok(1));
        assert_eq!(limit(Some(MAX_LIMIT)), Ok(500));
        assert_eq!(limit(Some(0)), Err(PagingError::Limit));
        assert_eq!(limit(Some(MAX_LIMIT + 1)), Err(PagingError::Limit));
        assert_eq!(PagingError::Limit.field(), "limit");
        assert_eq!(after(None), Ok(None));
        assert_eq!(after(Some(&encode("b"))), Ok(Some("b".into())));
        assert_eq!(
            after(Some("%%%")),
            Err(PagingError::Cursor(super::CursorError::Foreign))
        );
        let bad = PagingError::Cursor(super::CursorError::Foreign);
        assert_eq!(
            (bad.field(), bad.to_string().as_str()),
            ("cursor", "not a cursor from this API")
        );
        let cut = page(vec![1, 2, 3], 2, |n: &i32| n.to_string());
        assert_eq!(cut, (vec![1, 2], Some("2".into())));
        assert_eq!(page(vec![1, 2], 2, |n: &i32| n.to_string()), (vec![1, 2], None));
    }

    #[test]
    fn ordered_cursors_carry_their_direction() {
        use super::{CursorError, Order, continue_from, encode, encode_ordered};
        assert_eq!(continue_from(None, None), Ok((Order::Desc, None)));
        assert_eq!(continue_from(None, Some(Order::Asc)), Ok((Order::Asc, None)));
        let c = encode_ordered(Order::Asc, "01abc");
        assert_eq!(continue_from(Some(&c), None), Ok((Order::Asc, Some("01abc".into()))));
        assert_eq!(
            continue_from(Some(&c), Some(Order::Asc)),
            Ok((Order::Asc, Some("01abc".into())))
        );
        assert_eq!(
            continue_from(Some(&c), Some(Order::Desc)),
            Err(CursorError::OtherOrder("asc"))
        );
        let d = encode_ordered(Order::Desc, "01abc");
        assert_eq!(continue_from(Some(&d), None), Ok((Order::Desc, Some("01abc".into()))));
        // A bare position (an older cursor) or garbage is not accepted.
        assert_eq!(continue_from(Some(&encode("01abc")), None), Err(CursorError::Foreign));
        assert_eq!(continue_from(Some(&encode("<")), None), Err(CursorError::Foreign));
        assert_eq!(continue_from(Some("%%%"), None), Err(CursorError::Foreign));
    }
}
