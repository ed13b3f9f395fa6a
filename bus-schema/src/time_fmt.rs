//! Timestamps: milliseconds since the Unix epoch inside, RFC 3339 UTC with milliseconds on the wire
//! (`2026-11-22T10:00:00.123Z`). Serde helpers for `u64` and `Option<u64>` fields.

use serde::{Deserialize, Deserializer, Serializer};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

/// The last second the wire format (and the `time` crate without large dates) can express:
/// 9999-12-31T23:59:59Z.
const MAX_WIRE_SECS: u64 = 253_402_300_799;

/// Formats epoch milliseconds as RFC 3339 UTC with exactly three fraction digits.
/// Hand-rolled because it runs several times per task on the coordinator's hot path;
/// `slow_format_ms` is the reference it must match (and the path past year 9999).
pub fn format_ms(ms: u64) -> String {
    if ms / 1000 > MAX_WIRE_SECS {
        return slow_format_ms(ms);
    }
    let (y, mo, d) = civil_from_days(ms / 86_400_000);
    let in_day = ms % 86_400_000;
    let (h, mi, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, mo);
    put(8, 2, d);
    put(11, 2, h);
    put(14, 2, mi);
    put(17, 2, s);
    put(20, 3, milli);
    // Only ASCII digits and separators were written.
    String::from_utf8(b.to_vec()).unwrap_or_default()
}

/// The `time`-based formatter `format_ms` replaces; kept as its reference and for times past
/// year 9999, which it renders from the epoch as it always did.
fn slow_format_ms(ms: u64) -> String {
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

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a valid date on or after it (inverse of `civil_from_days`).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Epoch ms of the exact form `format_ms` writes, with every field in range and the date on
/// or after 1970; anything else is left to the full RFC 3339 parser.
fn parse_canonical(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 24 || &b[4..5] != b"-" || &b[7..8] != b"-" || b[10] != b'T' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' || b[19] != b'.' || b[23] != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u64> {
        b[from..to].iter().try_fold(0u64, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
        })
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec, milli) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
    let date_ok = y >= 1970 && (1..=12).contains(&mo) && d >= 1 && d <= days_in_month(y, mo);
    if !date_ok || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec;
    Some(secs * 1000 + milli)
}

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_ms(s: &str) -> Result<u64, String> {
    match parse_canonical(s) {
        Some(ms) => Ok(ms),
        None => slow_parse_ms(s),
    }
}

fn slow_parse_ms(s: &str) -> Result<u64, String> {
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

    #[test]
    fn fast_paths_match_the_time_crate_at_the_edges() {
        let max = MAX_WIRE_SECS * 1000 + 999;
        for ms in [
            0,
            1,
            999,
            86_399_999,
            86_400_000,
            951_782_400_000,
            4_107_542_400_000,
            max,
        ] {
            let s = format_ms(ms);
            assert_eq!(s, slow_format_ms(ms));
            assert_eq!(parse_ms(&s), slow_parse_ms(&s));
        }
        // Past year 9999 both fall back to the epoch, as before.
        assert_eq!(format_ms(max + 1), slow_format_ms(max + 1));
        for s in [
            "2024-02-29T23:59:59.999Z",
            "2023-02-29T00:00:00.000Z",
            "2024-13-01T00:00:00.000Z",
            "2024-00-10T00:00:00.000Z",
            "2024-01-32T00:00:00.000Z",
            "2024-01-01T24:00:00.000Z",
            "2024-01-01T00:60:00.000Z",
            "2024-01-01T00:00:60.000Z",
            "1969-12-31T23:59:59.999Z",
            "2024-01-01T00:00:00.000+00:00",
            "2024-01-01t00:00:00.000z",
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00.1234Z",
            "2024-0a-01T00:00:00.000Z",
        ] {
            assert_eq!(parse_ms(s), slow_parse_ms(s), "{s}");
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_format_and_parse_match_the_time_crate(ms in 0u64..=MAX_WIRE_SECS * 1000 + 999) {
            let s = format_ms(ms);
            proptest::prop_assert_eq!(&s, &slow_format_ms(ms));
            proptest::prop_assert_eq!(parse_ms(&s), Ok(ms));
            proptest::prop_assert_eq!(slow_parse_ms(&s), Ok(ms));
        }
    }
}
