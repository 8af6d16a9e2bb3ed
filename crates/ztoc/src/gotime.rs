//! Go `time` formatting as the reference zTOC builder uses it.
//!
//! The reference writes `FileMetadata.mod_time` with `time.Time.MarshalText` on the
//! `time.Unix(secs, nanos)` value that Go's `archive/tar` produced. The goldens were made
//! with the process zone set to UTC, so we always emit the UTC form (`...Z`).

/// Unix seconds of 0000-01-01T00:00:00Z (first instant Go can marshal).
const MIN_MARSHAL_SECS: i64 = -62_167_219_200;
/// Unix seconds of 10000-01-01T00:00:00Z (first instant Go refuses to marshal).
const END_MARSHAL_SECS: i64 = 253_402_300_800;
const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Go `time.Time.MarshalText` of `time.Unix(secs, nanos)` in UTC: RFC 3339 with the
/// fractional seconds trimmed of trailing zeros (none at all when zero) and `Z`.
///
/// Returns `""` when the year is outside `0..=9999`: Go's `MarshalText` returns an error
/// there and the reference ignores the error, writing an empty string.
///
/// `nanos` may be negative or over 1e9, as `time.Unix` allows; it is normalised the way
/// Go does (with Go's wrapping arithmetic at the extremes).
pub(crate) fn marshal_text_utc(secs: i64, nanos: i64) -> String {
    let (sec, nsec) = normalize_unix(secs, nanos);
    // Go's calendar arithmetic wraps modulo 2^64 around a fixed offset, which makes the
    // mapping seconds -> year a bijection; so "year in 0..=9999" is exactly this range.
    if !(MIN_MARSHAL_SECS..END_MARSHAL_SECS).contains(&sec) {
        return String::new();
    }
    let days = sec.div_euclid(86_400);
    let sod = sec.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        year,
        month,
        day,
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    if nsec != 0 {
        let frac = format!("{nsec:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// `time.Unix` normalisation of (sec, nsec) so that 0 <= nsec < 1e9.
fn normalize_unix(mut sec: i64, mut nsec: i64) -> (i64, i64) {
    if !(0..NANOS_PER_SEC).contains(&nsec) {
        let n = nsec / NANOS_PER_SEC; // truncates toward zero, like Go
        sec = sec.wrapping_add(n);
        nsec -= n * NANOS_PER_SEC;
        if nsec < 0 {
            nsec += NANOS_PER_SEC;
            sec = sec.wrapping_sub(1);
        }
    }
    (sec, nsec)
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`). The workspace's one calendar routine:
/// soci-index's store timestamps use it too (soci-index depends on this crate,
/// not the other way round), so it is re-exported from the crate root.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::marshal_text_utc as m;

    #[test]
    fn epoch_and_simple() {
        assert_eq!(m(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(m(1, 0), "1970-01-01T00:00:01Z");
        assert_eq!(
            m(1_614_834_367, 123_456_789),
            "2021-03-04T05:06:07.123456789Z"
        );
        assert_eq!(m(951_782_400, 0), "2000-02-29T00:00:00Z");
        assert_eq!(m(4_107_542_400, 0), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn nanos_trimmed() {
        assert_eq!(m(0, 500_000_000), "1970-01-01T00:00:00.5Z");
        assert_eq!(m(0, 120_000_000), "1970-01-01T00:00:00.12Z");
        assert_eq!(m(0, 1), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(m(0, 100), "1970-01-01T00:00:00.0000001Z");
    }

    #[test]
    fn negative_seconds_and_nanos() {
        assert_eq!(m(-1, 0), "1969-12-31T23:59:59Z");
        // time.Unix(0, -500000000) == -0.5s
        assert_eq!(m(0, -500_000_000), "1969-12-31T23:59:59.5Z");
        assert_eq!(m(-1, -1), "1969-12-31T23:59:58.999999999Z");
        // nanos over one second carry into seconds
        assert_eq!(m(0, 2_500_000_000), "1970-01-01T00:00:02.5Z");
        assert_eq!(m(-86_400 * 365, 0), "1969-01-01T00:00:00Z");
    }

    #[test]
    fn year_range() {
        assert_eq!(m(-62_167_219_200, 0), "0000-01-01T00:00:00Z");
        assert_eq!(m(-62_167_219_201, 0), "");
        assert_eq!(
            m(253_402_300_799, 999_999_999),
            "9999-12-31T23:59:59.999999999Z"
        );
        assert_eq!(m(253_402_300_800, 0), "");
        assert_eq!(m(253_402_300_799, 1_000_000_000), "");
        assert_eq!(m(i64::MAX, 0), "");
        assert_eq!(m(i64::MIN, -1), "");
        assert_eq!(m(i64::MAX, i64::MAX), "");
        // Largest octal value of a 12-byte mtime field (8^11-1): year 2242.
        assert_eq!(m(8_589_934_591, 0), "2242-03-16T12:56:31Z");
    }
}
