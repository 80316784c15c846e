//! Timestamps are stored as RFC 3339 text in UTC with microseconds, which sorts in time order
//! on every backend and needs no driver-specific date types.

use crate::{DbError, DbResult};
use chrono::{DateTime, Utc};

/// Encodes a timestamp for storage.
pub fn encode(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Decodes a stored timestamp.
pub fn decode(column: &'static str, text: &str) -> DbResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|error| DbError::Corrupt {
            column,
            reason: format!("'{text}' is not a timestamp: {error}"),
        })
}

/// Decodes an optional stored timestamp.
pub fn decode_optional(
    column: &'static str,
    text: Option<String>,
) -> DbResult<Option<DateTime<Utc>>> {
    text.map(|text| decode(column, &text)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn round_trips_and_sorts_as_text() {
        let early = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let late = early + chrono::Duration::microseconds(1);
        assert_eq!(decode("t", &encode(&early)).unwrap(), early);
        assert!(encode(&early) < encode(&late));
        assert!(decode("t", "yesterday").is_err());
    }
}
