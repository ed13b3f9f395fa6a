//! Timestamps: milliseconds since the Unix epoch inside, RFC 3339 UTC with milliseconds on the wire
//! (`2026-11-22T10:00:00.123Z`). Serde helpers for `u64` and `Option<u64>` fields.

use serde::{Deserialize, Deserializer, Serializer};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

/// Formats epoch milliseconds as RFC 3339 UTC with exactly three fraction digits.
pub fn format_ms(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let millis = ms % 1000;
    let dt = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        millis
    )
}

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_ms(s: &str) -> Result<u64, String> {
    let dt = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("bad timestamp '{s}': {e}"))?;
    let ms = dt.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).map_err(|_| format!("timestamp '{s}' is before 1970"))
}

pub mod ms {
    use super::*;
    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_ms(*v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        parse_ms(&s).map_err(serde::de::Error::custom)
    }
}

pub mod opt_ms {
    use super::*;
    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&format_ms(*v)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| parse_ms(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_millis() {
        let ms = 1_795_341_600_123;
        let s = format_ms(ms);
        assert!(s.ends_with(".123Z"), "{s}");
        assert_eq!(parse_ms(&s).unwrap(), ms);
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert!(parse_ms("yesterday").is_err());
    }
}
