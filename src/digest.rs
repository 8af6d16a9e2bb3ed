//! Digests as users type them: in full, without `sha256:`, or as a unique
//! prefix of the hex (as `git` takes commit ids).
use anyhow::{bail, Result};
use soci_oci::spec::Digest;

/// `digests` as one line, `a, b, c`.
pub(crate) fn join(digests: &[Digest]) -> String {
    digests
        .iter()
        .map(Digest::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `s` could be a (possibly abbreviated) sha256 digest: `sha256:HEX…`
/// or bare hex, at most 64 digits.
pub(crate) fn looks_like_digest(s: &str) -> bool {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The one digest among `known` (full `sha256:HEX` digests) that `input` names:
/// `input` is a digest or a prefix of one, with or without `sha256:`, in any
/// case. `what` names the kind of thing in errors ("SOCI index", "zTOC").
/// No match and several matches are errors; the latter lists the candidates.
pub(crate) fn resolve<'a>(
    input: &str,
    known: impl IntoIterator<Item = &'a Digest>,
    what: &str,
) -> Result<Digest> {
    let trimmed = input.trim();
    let lower = trimmed.to_ascii_lowercase();
    let hex = lower.strip_prefix("sha256:").unwrap_or(&lower);
    if !looks_like_digest(hex) {
        bail!("{input:?} is not a {what} digest (sha256:HEX, or a prefix of the hex)");
    }
    let mut matches: Vec<&Digest> = known
        .into_iter()
        .filter(|d| d.hex().is_some_and(|h| h.starts_with(hex)))
        .collect();
    matches.sort_unstable();
    matches.dedup();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!("no {what} {input} in the local store"),
        many => bail!(
            "{what} digest prefix {input} is ambiguous: it matches {}; type more of it",
            many.iter()
                .map(|d| d.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::resolve;
    use soci_oci::spec::Digest;

    const A: &str = "sha256:abc1000000000000000000000000000000000000000000000000000000000000";
    const B: &str = "sha256:abc2000000000000000000000000000000000000000000000000000000000000";
    const C: &str = "sha256:def0000000000000000000000000000000000000000000000000000000000000";

    fn digests(texts: &[&str]) -> Vec<Digest> {
        texts.iter().map(|t| Digest::parse(t).unwrap()).collect()
    }

    #[test]
    fn full_bare_and_prefix_forms() {
        let known = &digests(&[A, B, C, A]);
        assert_eq!(resolve(A, known, "x").unwrap(), A);
        assert_eq!(resolve(&A[7..], known, "x").unwrap(), A);
        assert_eq!(resolve("abc1", known, "x").unwrap(), A);
        assert_eq!(resolve("sha256:de", known, "x").unwrap(), C);
        assert_eq!(resolve("DEF", known, "x").unwrap(), C);
    }

    #[test]
    fn ambiguous_and_unknown_prefixes_are_errors() {
        let known = &digests(&[A, B, C]);
        let e = resolve("abc", known, "zTOC").unwrap_err().to_string();
        assert!(
            e.contains("ambiguous") && e.contains(A) && e.contains(B),
            "{e}"
        );
        assert!(!e.contains(C), "{e}");
        let e = resolve("sha256:0123", known, "zTOC")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "no zTOC sha256:0123 in the local store");
        let e = resolve("sha256:", known, "zTOC").unwrap_err().to_string();
        assert!(e.contains("is not a zTOC digest"), "{e}");
        assert!(resolve("xyz", known, "zTOC").is_err());
    }
}
