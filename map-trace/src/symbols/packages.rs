//! Whose code a frame is, the standard library's or the user's (the main module and its
//! dependencies), and so which frame of a stack is its call site.
//!
//! A frame is the standard library's when its function's package is one of the release's
//! standard packages (`go list std`, kept per release in `std_packages.txt`, `vendor/…` and
//! `internal/…` included), or code the compiler generated (`type:.eq.…`); everything else is
//! the user's. The call site is the first (innermost) user frame: the user's line that called
//! into the standard library. A stack with no user frame (a map the standard library grows on
//! a goroutine it started) has its site at the first frame outside the runtime, reflection and
//! the `maps` helpers; one made only of those has none (the runtime's own maps).

use std::sync::LazyLock;

use rustc_hash::FxHashMap;

use super::pclntab::SourcePos;

/// The data file: a `releases` line, then `package runs` lines.
const STD_PACKAGES: &str = include_str!("std_packages.txt");

/// Packages a site never is, even with no user frame: the runtime, reflection, `maps`.
const HELPERS: &[&str] = &["runtime", "reflect", "maps", "internal/abi"];

/// The standard packages of each release in the data file.
struct Std {
    /// Minor releases the file lists, ascending.
    releases: Vec<u32>,
    /// Package → bit `i` set if release `releases[i]` lists it.
    packages: FxHashMap<&'static str, u64>,
}

static STD: LazyLock<Std> = LazyLock::new(|| parse(STD_PACKAGES));

/// Parses the data file (lines it cannot read are skipped; the xtask check keeps it exact).
fn parse(text: &'static str) -> Std {
    let mut lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty());
    let releases: Vec<u32> = lines
        .next()
        .and_then(|l| l.strip_prefix("releases "))
        .map(|l| l.split(' ').filter_map(|m| m.parse().ok()).collect())
        .unwrap_or_default();
    let index = |m: &str| {
        m.parse()
            .ok()
            .and_then(|m: u32| releases.iter().position(|r| *r == m))
    };
    let mut packages = FxHashMap::default();
    for line in lines {
        let Some((package, runs)) = line.split_once(' ') else {
            continue;
        };
        let mut bits = 0u64;
        for run in runs.split(',') {
            let (a, b) = run.split_once('-').unwrap_or((run, run));
            if let (Some(a), Some(b)) = (index(a), index(b)) {
                for i in a..=b.min(63) {
                    bits |= 1 << i;
                }
            }
        }
        packages.insert(package, bits);
    }
    Std { releases, packages }
}

impl Std {
    /// Whether `package` is standard in Go 1.`go_minor`: by the release itself, or, for one the
    /// file does not list (1.18, 1.20, a newer one), the nearest later release it does (the
    /// newest for a newer one).
    fn has(&self, package: &str, go_minor: u32) -> bool {
        let Some(&bits) = self.packages.get(package) else {
            return false;
        };
        let i = self
            .releases
            .iter()
            .position(|r| *r >= go_minor)
            .unwrap_or(self.releases.len().saturating_sub(1));
        bits & (1 << i) != 0
    }
}

/// The package path of a Go function name: `main` of `main.(*T).add.func1`,
/// `github.com/a/b` of `github.com/a/b.F[go.shape.int]`. The linker escapes dots in a path's
/// last element (`gopkg.in/yaml%2ev3`), so the first dot after the last slash ends it.
pub fn package_of(function: &str) -> &str {
    let name = function.split('[').next().unwrap_or(function);
    let last = name.rfind('/').map_or(0, |i| i + 1);
    match name[last..].find('.') {
        Some(dot) => &name[..last + dot],
        None => name,
    }
}

/// Whether the frame's function is the standard library's in Go 1.`go_minor` (or generated
/// by the compiler).
pub fn is_std(function: &str, go_minor: u32) -> bool {
    if ["type:", "type.", "go:", "go."]
        .iter()
        .any(|p| function.starts_with(p))
    {
        return true;
    }
    STD.has(package_of(function), go_minor)
}

/// Whether the function belongs to the runtime, reflection or the `maps` helpers (never a
/// call site).
pub fn is_helper(function: &str) -> bool {
    let package = package_of(function);
    HELPERS.contains(&package)
        || package.starts_with("internal/runtime/")
        || function.starts_with("type:")
        || function.starts_with("type.")
}

/// Whether a frame is the standard library's: its function's, or a closure the compiler
/// named after the user function it inlined the standard library's code into (Go 1.23 calls
/// `maps.All`'s iterator, inlined into `main.f`, `main.f.All[…].func1`) whose file is in a
/// standard package's directory (`maps/iter.go`, or `…/src/maps/iter.go` without -trimpath).
fn std_frame(f: &SourcePos, go_minor: u32) -> bool {
    if is_std(&f.function, go_minor) {
        return true;
    }
    let generated = f.function.contains(".func") || f.function.contains("-range");
    let dir = f.file.rsplit_once('/').map_or("", |(d, _)| d);
    let dir = dir.rsplit_once("/src/").map_or(dir, |(_, d)| d);
    generated && !dir.is_empty() && STD.has(dir, go_minor)
}

/// The call site of logical frames (innermost first) of a Go 1.`go_minor` program: the first
/// user frame, else the first outside the runtime, reflection and `maps`, else none.
pub fn site(frames: &[SourcePos], go_minor: u32) -> Option<usize> {
    frames
        .iter()
        .position(|f| !std_frame(f, go_minor))
        .or_else(|| frames.iter().position(|f| !is_helper(&f.function)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(function: &str) -> SourcePos {
        SourcePos {
            function: function.into(),
            file: String::new(),
            line: 1,
            inlined: false,
        }
    }

    #[test]
    fn test_package_of() {
        for (f, p) in [
            ("main.fill", "main"),
            ("main.(*T).add.func1", "main"),
            ("runtime.mapassign_fast64", "runtime"),
            (
                "internal/runtime/maps.(*table).rehash",
                "internal/runtime/maps",
            ),
            ("github.com/a/b.F[go.shape.int]", "github.com/a/b"),
            ("github.com/a/b.F[github.com/c/d.T]", "github.com/a/b"),
            (
                "gopkg.in/yaml%2ev3.(*decoder).unmarshal",
                "gopkg.in/yaml%2ev3",
            ),
            ("encoding/json.(*decodeState).object", "encoding/json"),
            (
                "vendor/golang.org/x/net/http2/hpack.(*Decoder).Write",
                "vendor/golang.org/x/net/http2/hpack",
            ),
        ] {
            assert_eq!(package_of(f), p, "{f}");
        }
    }

    #[test]
    fn test_std_per_release() {
        assert!(is_std("encoding/json.Unmarshal", 19));
        assert!(is_std("reflect.mapassign_faststr0", 27));
        assert!(is_std("internal/runtime/maps.(*Map).putSlot", 24));
        assert!(is_std(
            "vendor/golang.org/x/net/http2/hpack.(*Decoder).Write",
            21
        ));
        assert!(is_std("type:.eq.main.key", 22));
        // `maps` is std from 1.21; in a 1.19 program it is somebody's own package.
        assert!(is_std("maps.Copy[...]", 21));
        assert!(!is_std("maps.Copy", 19));
        // Releases the file does not list take the next one it does; newer ones the newest.
        assert!(is_std("maps.Copy", 20));
        assert!(is_std("iter.Pull", 40));
        assert!(!is_std("main.main", 27));
        assert!(!is_std("github.com/gohugoio/hugo/tpl.New", 27));
        // A user package named like a std one's sub-directory is not std.
        assert!(!is_std("encoding/jsonx.F", 27));
    }

    #[test]
    fn test_site_is_the_first_user_frame() {
        // maps.Copy inlined into a std function inlined into the user's code.
        let frames = [
            pos("runtime.mapassign_faststr"),
            pos("maps.Copy[...]"),
            pos("html/template.(*escaper).escapeListConditionally"),
            pos("github.com/x/site.render"),
            pos("main.main"),
        ];
        assert_eq!(site(&frames, 27), Some(3));
        // No user frame: the first outside the runtime, reflection and maps.
        let frames = [
            pos("runtime.mapassign_faststr"),
            pos("reflect.mapassign_faststr0"),
            pos("reflect.Value.SetMapIndex"),
            pos("encoding/json.(*decodeState).object"),
            pos("net/http.(*conn).serve"),
        ];
        assert_eq!(site(&frames, 27), Some(3));
        // Go 1.23 names maps.All's iterator inlined into main.f after main.f: its file says
        // it is the standard library's.
        let mut closure = pos("main.f.All[go.shape.map[int]int,go.shape.int,go.shape.int].func1");
        closure.file = "maps/iter.go".into();
        let mut user = pos("main.f");
        user.file = "growth/f.go".into();
        let frames = [
            pos("runtime.mapassign_fast64"),
            closure.clone(),
            pos("maps.Insert[...]"),
            user,
        ];
        assert_eq!(site(&frames, 23), Some(3));
        closure.file = "/usr/lib/go/src/maps/iter.go".into();
        let frames = [closure, pos("main.f")];
        assert_eq!(site(&frames, 23), Some(1));
        // A user closure in the user's file stays the user's.
        let mut mine = pos("main.f.func1");
        mine.file = "growth/f.go".into();
        assert_eq!(site(&[pos("runtime.mapassign"), mine], 23), Some(1));
        // Only the runtime's own: none.
        let frames = [pos("runtime.mapassign"), pos("runtime.main")];
        assert_eq!(site(&frames, 27), None);
        assert_eq!(site(&[], 27), None);
    }

    #[test]
    fn test_the_data_file_lists_every_release_and_the_core_packages() {
        let std = &*STD;
        assert!(std.releases.len() >= 8, "{:?}", std.releases);
        assert!(std.releases.windows(2).all(|w| w[0] < w[1]));
        let all = (1u64 << std.releases.len()) - 1;
        for p in ["runtime", "reflect", "encoding/json", "fmt", "sync"] {
            assert_eq!(std.packages.get(p), Some(&all), "{p}");
        }
    }
}
