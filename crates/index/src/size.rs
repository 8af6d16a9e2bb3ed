//! Sizes as users type them on a command line (`4194304`, `64KiB`, `4MiB`).
//!
//! Here rather than in a front end because two binaries read them: `soci`
//! (`--span-size`, `--min-layer-size`) and `soci-bench` (the same flags and the
//! sweeps), and a size must mean the same in both.

/// A size that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// The text (given here) is not a number of bytes with an optional KiB/MiB suffix.
    #[error("`{0}` is not a size in bytes (e.g. 4194304 or 4MiB)")]
    NotASize(String),
    /// The size (text given here) does not fit in a `u64`.
    #[error("`{0}` is too large")]
    TooLarge(String),
    /// A span size of 0, which is not allowed.
    #[error("the span size must be greater than 0")]
    Zero,
}

/// Parses a size in bytes with an optional KiB/MiB suffix (0 allowed).
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    if s.trim() == "0" {
        return Ok(0);
    }
    parse_span_size(s)
}

/// Parses a span size: plain bytes or with a KiB/MiB suffix (`65536`, `64KiB`, `4MiB`).
pub fn parse_span_size(s: &str) -> Result<u64, SizeError> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("MiB") {
        (n, 1u64 << 20)
    } else if let Some(n) = t.strip_suffix("KiB") {
        (n, 1u64 << 10)
    } else {
        (t, 1)
    };
    let v: u64 = num
        .trim()
        .parse()
        .map_err(|_| SizeError::NotASize(s.to_string()))?;
    let v = v
        .checked_mul(mult)
        .ok_or_else(|| SizeError::TooLarge(s.to_string()))?;
    if v == 0 {
        return Err(SizeError::Zero);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_and_zero() {
        assert_eq!(parse_span_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_span_size(" 64KiB "), Ok(64 << 10));
        assert_eq!(parse_span_size("65536"), Ok(65536));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_span_size("0"), Err(SizeError::Zero));
        assert!(matches!(
            parse_span_size("4GB"),
            Err(SizeError::NotASize(_))
        ));
        assert!(matches!(
            parse_span_size("18446744073709551615MiB"),
            Err(SizeError::TooLarge(_))
        ));
    }
}
