//! Platforms as containerd's `platforms` package understands them: parsing of
//! `os/arch[/variant]`, normalisation, the host default (`DefaultSpec`) and
//! strict matching (`OnlyStrict`), which is what `soci create`/`convert` use to
//! choose a manifest from an index.
use crate::error::{Error, Result};
pub use crate::spec::Platform;
use std::fmt;
use std::str::FromStr;

const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
    "zos",
];
const KNOWN_ARCH: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

fn normalize_os(os: &str) -> String {
    let os = os.to_ascii_lowercase();
    if os == "macos" {
        "darwin".into()
    } else {
        os
    }
}

/// containerd's `normalizeArch`.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    match arch.as_str() {
        "i386" => ("386".into(), String::new()),
        "x86_64" | "x86-64" | "amd64" => (
            "amd64".into(),
            if variant == "v1" {
                String::new()
            } else {
                variant
            },
        ),
        "aarch64" | "arm64" => {
            let v = match variant.as_str() {
                "8" | "v8" | "v8.0" => String::new(),
                "9" | "9.0" | "v9.0" => "v9".into(),
                _ => variant,
            };
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), "v7".into()),
        "armel" => ("arm".into(), "v6".into()),
        "arm" => {
            let v = match variant.as_str() {
                "" | "7" => "v7".into(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm".into(), v)
        }
        _ => (arch, variant),
    }
}

/// The host's GOOS/GOARCH and containerd `cpuVariant()` (arm64 reports `v8`).
fn host_os_arch() -> (&'static str, &'static str, &'static str) {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let (arch, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", ""),
        "x86" => ("386", ""),
        "aarch64" => ("arm64", "v8"),
        "arm" => ("arm", "v7"),
        "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", ""),
        "powerpc64" => ("ppc64", ""),
        "loongarch64" => ("loong64", ""),
        "mips64" if cfg!(target_endian = "little") => ("mips64le", ""),
        other => (other, ""),
    };
    (os, arch, variant)
}

impl Platform {
    /// containerd `platforms.DefaultSpec()`: e.g. linux/amd64, or linux/arm64/v8.
    pub fn host() -> Platform {
        let (os, arch, variant) = host_os_arch();
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.into(),
            ..Default::default()
        }
    }

    /// containerd `platforms.Normalize`: lower case, `x86_64` → `amd64`,
    /// `aarch64` → `arm64`, arm64 `v8` → no variant, arm without variant → `v7`, …
    pub fn normalize(&self) -> Platform {
        let (architecture, variant) = normalize_arch(&self.architecture, &self.variant);
        Platform {
            os: normalize_os(&self.os),
            architecture,
            variant,
            ..self.clone()
        }
    }

    /// containerd `platforms.OnlyStrict(self).Match(other)`: both sides normalised,
    /// then OS, architecture and variant must be equal (no arm fallbacks, no
    /// amd64 variant downgrades); for Windows the OS version's
    /// major.minor.build must also agree when `self` has one.
    pub fn matches_strict(&self, other: &Platform) -> bool {
        let a = self.normalize();
        let b = other.normalize();
        if a.os != b.os || a.architecture != b.architecture || a.variant != b.variant {
            return false;
        }
        if a.os == "windows" && !a.os_version.is_empty() {
            let prefix = |v: &str| v.split('.').take(3).collect::<Vec<_>>().join(".");
            return prefix(&a.os_version) == prefix(&b.os_version);
        }
        true
    }

    /// `true` for the `unknown/unknown` entries Docker buildx adds for attestations.
    pub fn is_unknown(&self) -> bool {
        self.os == "unknown" || self.architecture == "unknown"
    }
}

/// containerd `platforms.Parse`: `os`, `arch`, `os/arch` or `os/arch/variant`
/// (a lone OS takes the host architecture, a lone architecture the host OS).
impl FromStr for Platform {
    type Err = Error;

    fn from_str(input: &str) -> Result<Platform> {
        let bad = |reason: &str| Error::InvalidPlatform {
            input: input.into(),
            reason: reason.into(),
        };
        let parts: Vec<&str> = input.split('/').collect();
        if parts.iter().any(|p| {
            p.is_empty()
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        }) {
            return Err(bad(
                "expected os/arch[/variant] with non-empty alphanumeric parts",
            ));
        }
        let mut p = Platform::default();
        match parts.as_slice() {
            [one] => {
                let (host_os, host_arch, host_variant) = host_os_arch();
                let lower = one.to_ascii_lowercase();
                if KNOWN_OS.contains(&normalize_os(&lower).as_str()) {
                    p.os = normalize_os(&lower);
                    p.architecture = host_arch.into();
                    p.variant = host_variant.into();
                } else {
                    let (arch, variant) = normalize_arch(&lower, "");
                    if !KNOWN_ARCH.contains(&arch.as_str()) {
                        return Err(bad("unknown operating system or architecture"));
                    }
                    p.os = host_os.into();
                    p.architecture = arch;
                    p.variant = variant;
                }
            }
            [os, arch] => {
                p.os = normalize_os(os);
                (p.architecture, p.variant) = normalize_arch(arch, "");
                if p.architecture == "arm" && p.variant == "v7" {
                    p.variant.clear();
                }
            }
            [os, arch, variant] => {
                p.os = normalize_os(os);
                (p.architecture, p.variant) = normalize_arch(arch, variant);
                if p.architecture == "arm64" && p.variant.is_empty() {
                    p.variant = "v8".into();
                }
            }
            _ => {
                return Err(bad(
                    "too many '/'-separated parts (expected os/arch[/variant])",
                ))
            }
        }
        Ok(p)
    }
}

/// `os/arch[/variant]`, like containerd's `platforms.Format`.
impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let os = if self.os.is_empty() {
            "unknown"
        } else {
            &self.os
        };
        let arch = if self.architecture.is_empty() {
            "unknown"
        } else {
            &self.architecture
        };
        write!(f, "{os}/{arch}")?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_normalise() {
        assert_eq!(p("linux/amd64").to_string(), "linux/amd64");
        assert_eq!(p("Linux/x86_64").to_string(), "linux/amd64");
        assert_eq!(p("linux/aarch64").to_string(), "linux/arm64");
        // containerd keeps an explicit arm64 variant (and restores v8 for "linux/arm64/8").
        assert_eq!(p("linux/arm64/v8").to_string(), "linux/arm64/v8");
        assert_eq!(p("linux/aarch64/8").to_string(), "linux/arm64/v8");
        assert_eq!(p("linux/arm").to_string(), "linux/arm");
        assert_eq!(p("linux/arm/v6").to_string(), "linux/arm/v6");
        assert_eq!(p("linux/armhf").to_string(), "linux/arm"); // v7 is the default, dropped like containerd
        assert_eq!(p("windows/amd64").to_string(), "windows/amd64");
        assert_eq!(p("linux").os, "linux");
        assert_eq!(p("linux").architecture, Platform::host().architecture);
        assert_eq!(p("arm64").os, Platform::host().os);
        for bad in [
            "",
            "/",
            "linux/",
            "linux/amd64/v1/x",
            "nonsense",
            "linux/am d64",
        ] {
            let e = bad.parse::<Platform>().unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn host_is_normalisable_and_matches_itself() {
        let h = Platform::host();
        assert!(!h.os.is_empty() && !h.architecture.is_empty());
        assert!(h.matches_strict(&h));
        if cfg!(target_arch = "x86_64") {
            assert_eq!(h.to_string(), "linux/amd64");
        }
        if cfg!(target_arch = "aarch64") {
            assert_eq!(h.to_string(), "linux/arm64/v8");
        }
    }

    #[test]
    fn strict_matching() {
        let arm64v8 = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: "v8".into(),
            ..Default::default()
        };
        let arm64 = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            ..Default::default()
        };
        assert!(arm64v8.matches_strict(&arm64));
        assert!(arm64.matches_strict(&arm64v8));
        assert!(p("linux/amd64").matches_strict(&Platform {
            os: "linux".into(),
            architecture: "x86_64".into(),
            ..Default::default()
        }));
        assert!(!p("linux/amd64").matches_strict(&arm64));
        assert!(!p("linux/amd64").matches_strict(&p("windows/amd64")));
        // Strict: no fallback from arm/v7 to arm/v6, nor amd64/v2 to amd64.
        assert!(!p("linux/arm/v7").matches_strict(&p("linux/arm/v6")));
        assert!(!p("linux/amd64/v2").matches_strict(&p("linux/amd64")));
        assert!(p("linux/arm").matches_strict(&Platform {
            os: "linux".into(),
            architecture: "arm".into(),
            variant: "v7".into(),
            ..Default::default()
        }));
        let unknown = Platform {
            os: "unknown".into(),
            architecture: "unknown".into(),
            ..Default::default()
        };
        assert!(unknown.is_unknown() && !p("linux/amd64").matches_strict(&unknown));
        let win = |v: &str| Platform {
            os: "windows".into(),
            architecture: "amd64".into(),
            os_version: v.into(),
            ..Default::default()
        };
        assert!(win("10.0.17763.1").matches_strict(&win("10.0.17763.5")));
        assert!(!win("10.0.17763.1").matches_strict(&win("10.0.20348.1")));
    }
}
