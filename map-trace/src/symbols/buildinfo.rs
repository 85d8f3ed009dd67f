//! The Go version recorded in `.go.buildinfo` (kept by `-ldflags="-s -w"`).
//!
//! Layout (Go 1.18+, `debug/buildinfo`): 14-byte magic `"\xff Go buildinf:"`, pointer size, flags
//! (bit 1: strings inline), padding to 32 bytes, then uvarint-prefixed version and modinfo strings.

/// Errors reading build information.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildInfoError {
    /// No `.go.buildinfo` section or magic: not a Go executable.
    #[error("no Go build information (.go.buildinfo): not a Go executable")]
    Missing,
    /// A pre-1.18 build information block (pointers instead of inline strings).
    #[error("Go build information in the pre-1.18 format")]
    PreGo118,
    /// The block is there but cannot be read.
    #[error("corrupted Go build information: {0}")]
    Corrupt(&'static str),
}

/// What the linker recorded about the build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    /// e.g. `go1.24.11 X:noswissmap`.
    pub version: String,
    /// `go version -m` text: path, mod, dep and build lines.
    pub modinfo: String,
}

const MAGIC: &[u8] = b"\xff Go buildinf:";

/// Parses the contents of the `.go.buildinfo` section (or any bytes starting at the magic).
pub fn parse(data: &[u8]) -> Result<BuildInfo, BuildInfoError> {
    let start = find(data, MAGIC).ok_or(BuildInfoError::Missing)?;
    let data = &data[start..];
    if data.len() < 32 {
        return Err(BuildInfoError::Corrupt("header truncated"));
    }
    let flags = data[15];
    if flags & 0x2 == 0 {
        return Err(BuildInfoError::PreGo118);
    }
    let mut rest = &data[32..];
    let version = read_string(&mut rest)?;
    let modinfo = read_string(&mut rest).unwrap_or_default();
    if version.is_empty() {
        return Err(BuildInfoError::Corrupt("empty version"));
    }
    Ok(BuildInfo {
        version,
        modinfo: strip_modinfo_sentinels(&modinfo),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn read_string(buf: &mut &[u8]) -> Result<String, BuildInfoError> {
    let mut len: u64 = 0;
    let mut shift = 0;
    loop {
        let (&b, rest) = buf
            .split_first()
            .ok_or(BuildInfoError::Corrupt("truncated length"))?;
        *buf = rest;
        if shift > 56 {
            return Err(BuildInfoError::Corrupt("length overflows"));
        }
        len |= u64::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    let len = usize::try_from(len).map_err(|_| BuildInfoError::Corrupt("length overflows"))?;
    if len > buf.len() {
        return Err(BuildInfoError::Corrupt("string runs past the end"));
    }
    let (s, rest) = buf.split_at(len);
    *buf = rest;
    Ok(String::from_utf8_lossy(s).into_owned())
}

/// modinfo is wrapped in 16-byte sentinels in Go's encoding; drop them if present.
fn strip_modinfo_sentinels(s: &str) -> String {
    if s.len() >= 33 && s.as_bytes()[s.len() - 17] == b'\n' {
        // `get`: after a lossy UTF-8 conversion the cut may not be on a char boundary (found
        // by fuzzing).
        if let Some(inner) = s.get(16..s.len() - 16) {
            return inner.to_string();
        }
    }
    s.to_string()
}

/// Leading decimal digits as a number, and the rest of the string.
fn split_number(s: &str) -> Option<(u32, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    Some((s[..end].parse().ok()?, &s[end..]))
}

/// A Go release: `go1.MINOR.PATCH` plus the experiments baked into the version string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoVersion {
    /// Always 1 for supported versions.
    pub major: u32,
    /// e.g. 23 for go1.23.9.
    pub minor: u32,
    /// e.g. 9 for go1.23.9; 0 for release candidates and devel builds.
    pub patch: u32,
    /// The version string as recorded.
    pub raw: String,
    /// `GOEXPERIMENT=noswissmap` (classic maps in 1.24/1.25).
    pub noswissmap: bool,
}

impl GoVersion {
    /// Parses `go1.23.9`, `go1.24.11 X:noswissmap`, `go1.26.6-X:nogreenteagc`, `go1.21rc2`,
    /// `devel go1.25-abcdef …`. `modinfo` supplies `build GOEXPERIMENT=` lines.
    pub fn parse(raw: &str, modinfo: &str) -> Option<Self> {
        let at = raw.find("go1.")?;
        let (major, rest) = split_number(&raw[at + 2..])?;
        let (minor, rest) = split_number(rest.strip_prefix('.')?)?;
        // patch follows a '.' directly after minor, otherwise 0 (rc/beta/devel).
        let patch = rest
            .strip_prefix('.')
            .and_then(split_number)
            .map_or(0, |(p, _)| p);
        let experiments = raw
            .split(['X', ':', ',', ' ', '-'])
            .chain(
                modinfo
                    .lines()
                    .filter_map(|l| l.strip_prefix("build\tGOEXPERIMENT=")),
            )
            .flat_map(|s| s.split(','))
            .collect::<Vec<_>>();
        let noswissmap = experiments.contains(&"noswissmap");
        Some(Self {
            major,
            minor,
            patch,
            raw: raw.to_string(),
            noswissmap,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(version: &str, modinfo: &str) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.push(8);
        v.push(2);
        v.resize(32, 0);
        v.push(version.len() as u8);
        v.extend_from_slice(version.as_bytes());
        v.push(modinfo.len() as u8);
        v.extend_from_slice(modinfo.as_bytes());
        v
    }

    #[test]
    fn test_buildinfo_parses_inline_strings() {
        let bi = parse(&block("go1.23.9", "path\tx\n")).unwrap();
        assert_eq!(bi.version, "go1.23.9");
        assert_eq!(bi.modinfo, "path\tx\n");
    }

    #[test]
    fn test_buildinfo_errors() {
        assert_eq!(parse(b"nothing here"), Err(BuildInfoError::Missing));
        let mut old = block("go1.16", "");
        old[15] = 0;
        assert_eq!(parse(&old), Err(BuildInfoError::PreGo118));
        let mut cut = block("go1.23.9", "");
        cut.truncate(36);
        assert!(matches!(parse(&cut), Err(BuildInfoError::Corrupt(_))));
        let mut huge = block("go1.23.9", "");
        huge[32] = 0xff;
        huge[33] = 0xff;
        assert!(matches!(parse(&huge), Err(BuildInfoError::Corrupt(_))));
    }

    #[test]
    fn test_go_version_forms() {
        let v = GoVersion::parse("go1.23.9", "").unwrap();
        assert_eq!((v.major, v.minor, v.patch, v.noswissmap), (1, 23, 9, false));
        let v = GoVersion::parse("go1.24.11 X:noswissmap", "").unwrap();
        assert_eq!((v.minor, v.patch, v.noswissmap), (24, 11, true));
        let v = GoVersion::parse("go1.26.6-X:nogreenteagc", "").unwrap();
        assert_eq!((v.minor, v.patch, v.noswissmap), (26, 6, false));
        let v = GoVersion::parse("go1.21rc2", "").unwrap();
        assert_eq!((v.minor, v.patch), (21, 0));
        let v = GoVersion::parse("go1.25.5", "build\tGOEXPERIMENT=noswissmap\n").unwrap();
        assert!(v.noswissmap);
        assert!(GoVersion::parse("weird", "").is_none());
        assert!(GoVersion::parse("go1.", "").is_none());
        assert_eq!(GoVersion::parse("go1.0021.3", "").unwrap().minor, 21);
        assert_eq!(GoVersion::parse("go1.22\u{fffd}.1", "").unwrap().patch, 0);
    }

    /// fuzz/artifacts/buildinfo/crash-048b8677…: modinfo sentinels cut inside a multi-byte
    /// replacement character.
    #[test]
    fn test_modinfo_sentinel_cut_on_char_boundary() {
        let s = format!("{}\n{}", "\u{fffd}".repeat(6), "x".repeat(16));
        let _ = strip_modinfo_sentinels(&s);
    }
}
