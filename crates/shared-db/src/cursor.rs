//! Opaque page cursors: the position key (an id or object key) in base64url; for lists in
//! time order, the direction too.
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
            ($crate::cursor::Order::Asc, Some(a)) => q.filter($column.gt(a)),
            ($crate::cursor::Order::Desc, Some(a)) => q.filter($column.lt(a)),
            (_, None) => q,
        };
        match $order {
            $crate::cursor::Order::Asc => q.order($column.asc()),
            $crate::cursor::Order::Desc => q.order($column.desc()),
        }
    }};
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
