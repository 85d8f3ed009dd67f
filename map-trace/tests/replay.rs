//! Replay tests: recorded streams through the pipeline and every sink, against reviewed golden
//! files. No root, no kernel, no Go toolchain: the recordings carry their symbols.
//!
//! - `tests/data/<name>.rec`: recordings. Real ones were written by `map-trace --record` from
//!   the Go fixtures (see `tests/data/README.md`); hand-made ones are built by
//!   `tests/synthetic/mod.rs` and must equal their file.
//! - `tests/golden/<name>.{txt,jsonl,trace.json,html}`: what `map-trace replay` writes for
//!   `--format text`, `--format json`, `--trace-out` and `--report`.
//!
//! After an intended output change, rewrite every golden file (and hand-made recording) and
//! review the diff:
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test -p map-trace --test replay
//! ```

mod synthetic;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

const BIN: &str = env!("CARGO_BIN_EXE_map-trace");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| !v.is_empty() && v != "0")
}

/// A directory of this test's own.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("map-trace-replay-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Where two texts first differ, with a few lines of each around it.
fn first_difference(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let i = w
        .iter()
        .zip(&g)
        .position(|(a, b)| a != b)
        .unwrap_or(w.len().min(g.len()));
    let show = |v: &[&str]| {
        v.iter()
            .enumerate()
            .skip(i.saturating_sub(2))
            .take(5)
            .map(|(n, l)| format!("  {:>5} | {l}\n", n + 1))
            .collect::<String>()
    };
    format!(
        "first difference at line {} ({} lines expected, {} written)\n expected:\n{} written:\n{}",
        i + 1,
        w.len(),
        g.len(),
        show(&w),
        show(&g)
    )
}

/// Compares `got` with the golden file (or rewrites it); returns a complaint on mismatch.
fn golden(path: &Path, got: &[u8]) -> Option<String> {
    if updating() {
        std::fs::write(path, got).unwrap();
        return None;
    }
    let want = std::fs::read(path).unwrap_or_default();
    (want != got).then(|| {
        format!(
            "{} differs: {}",
            path.display(),
            first_difference(
                &String::from_utf8_lossy(&want),
                &String::from_utf8_lossy(got)
            )
        )
    })
}

fn replay(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(BIN)
        .arg("replay")
        .args(args)
        .output()
        .expect("run map-trace")
}

/// Replays `tests/data/<name>.rec` into every sink and compares each output with its golden
/// file. `generated`: the bytes the hand-made recording must have.
fn check(name: &str, generated: Option<Vec<u8>>) {
    let rec = root().join("data").join(format!("{name}.rec"));
    let mut complaints = vec![];
    if let Some(bytes) = generated {
        complaints.extend(golden(&rec, &bytes));
    }
    let dir = scratch(name);
    let out = |ext: &str| dir.join(format!("{name}.{ext}"));
    let text = replay(&[
        rec.as_os_str(),
        "-o".as_ref(),
        out("txt").as_os_str(),
        "--trace-out".as_ref(),
        out("trace.json").as_os_str(),
        "--report".as_ref(),
        out("html").as_os_str(),
    ]);
    let json = replay(&[
        rec.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
        "-o".as_ref(),
        out("jsonl").as_os_str(),
        "--trace-out".as_ref(),
        out("json-run.trace.json").as_os_str(),
        "--report".as_ref(),
        out("json-run.html").as_os_str(),
    ]);
    for run in [&text, &json] {
        assert!(
            run.status.success() && run.stderr.is_empty() && run.stdout.is_empty(),
            "{name}: replay failed ({}): {}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let read = |ext: &str| std::fs::read(out(ext)).unwrap();
    for ext in ["txt", "jsonl", "trace.json", "html"] {
        let g = root().join("golden").join(format!("{name}.{ext}"));
        complaints.extend(golden(&g, &read(ext)));
    }
    // The trace and the report do not depend on --format.
    assert_eq!(read("trace.json"), read("json-run.trace.json"), "{name}");
    assert_eq!(read("html"), read("json-run.html"), "{name}");
    // Whatever the goldens say, the JSON outputs parse.
    for l in String::from_utf8(read("jsonl")).unwrap().lines() {
        serde_json::from_str::<serde_json::Value>(l).expect("a JSON line");
    }
    serde_json::from_slice::<serde_json::Value>(&read("trace.json")).expect("a JSON trace");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        complaints.is_empty(),
        "{}\nIf the change is intended: UPDATE_GOLDEN=1 cargo test -p map-trace --test replay, \
         then review the diff of tests/golden.",
        complaints.join("\n")
    );
}

/// Recordings of the Go fixtures (see `tests/data/README.md`).
macro_rules! recorded {
    ($($test:ident => $name:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            check($name, None);
        }
    )*};
}

/// Hand-made recordings (`tests/synthetic`).
macro_rules! hand_made {
    ($($test:ident => $name:ident),* $(,)?) => {$(
        #[test]
        fn $test() {
            check(stringify!($name), Some(synthetic::$name()));
        }
    )*};
}

recorded! {
    test_replay_classic_int => "go1.23.9-int",
    test_replay_swiss_int => "go1.26.6-int",
    test_replay_classic_goroutines => "go1.23.9-goroutines",
    test_replay_classic_stress => "go1.23.9-stress",
    test_replay_classic_evacuation => "go1.23.9-evacuation",
    test_replay_slices => "go1.23.9-slices",
    test_replay_concurrent_writes => "go1.24.11-race",
}

hand_made! {
    test_replay_drops => drops,
    test_replay_interleaved_goroutines => goroutines,
    test_replay_address_reuse => address_reuse,
    test_replay_growth_end_without_grow => unseen_end,
    test_replay_inferred_growth_ends => inferred_ends,
    test_replay_undecodable_records => undecodable,
}

/// A recording that cannot be read is one line on stderr and exit code 2, never a panic, and
/// whatever it is cut or garbled to.
#[test]
fn test_replay_malformed_recording_exits_2() {
    let good = String::from_utf8(synthetic::drops()).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let dir = scratch("malformed");
    let mut cases: Vec<(String, String)> = vec![
        ("empty".into(), String::new()),
        ("not-json".into(), "hello\n".into()),
        ("no-end".into(), lines[..lines.len() - 1].join("\n")),
        (
            "version-3".into(),
            good.replacen("\"record_version\":2", "\"record_version\":3", 1),
        ),
        (
            "bad-hex".into(),
            good.replacen("{\"record\":\"01", "{\"record\":\"x1", 1),
        ),
    ];
    // Every prefix cut at a line end but the whole, and a few cut mid-line.
    for n in [1, 2, 5, lines.len() - 1] {
        cases.push((format!("cut-{n}"), lines[..n].join("\n") + "\n"));
    }
    for at in [7, 300, good.len() / 2] {
        cases.push((format!("cut-at-{at}"), good[..at].to_string()));
    }
    for (case, text) in cases {
        let path = dir.join(format!("{case}.rec"));
        std::fs::write(&path, text).unwrap();
        let run = replay(&[path.as_os_str(), "-o".as_ref(), dir.join("out").as_os_str()]);
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{case}: {err}");
        assert!(
            err.starts_with("map-trace: error: ") && err.lines().count() == 1,
            "{case}: {err}"
        );
        assert!(err.contains(&*path.to_string_lossy()), "{case}: {err}");
    }
    let run = replay(&[dir.join("missing.rec").as_os_str()]);
    assert_eq!(run.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `-` reads the recording from standard input.
#[test]
fn test_replay_reads_stdin() {
    use std::io::Write;
    let dir = scratch("stdin");
    let path = dir.join("drops.rec");
    let rec = synthetic::drops();
    std::fs::write(&path, &rec).unwrap();
    let from_file = replay(&[path.as_os_str(), "--format".as_ref(), "json".as_ref()]);
    let mut child = Command::new(BIN)
        .args(["replay", "-", "--format", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&rec).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success() && from_file.status.success());
    assert!(!out.stdout.is_empty());
    assert_eq!(out.stdout, from_file.stdout);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Garbled recordings (bytes flipped, lines dropped or repeated) replay to a result or an
/// error, never a panic. A cheap, deterministic cousin of the `replay` fuzz target.
#[test]
fn test_replay_survives_garbled_recordings() {
    use map_trace::output::{
        json::JsonSink, perfetto::PerfettoSink, report::ReportSink, text::TextSink, Sink, Tee,
    };
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        // xorshift64*
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let inputs = [
        synthetic::drops(),
        synthetic::goroutines(),
        synthetic::unseen_end(),
        synthetic::undecodable(),
    ];
    let dir = scratch("garbled");
    let report = dir.join("report.html");
    let (mut ok, mut failed) = (0, 0);
    for input in &inputs {
        let lines: Vec<&[u8]> = input.split_inclusive(|&b| b == b'\n').collect();
        for _ in 0..250 {
            let mut bytes: Vec<u8> = match next() % 3 {
                // Flip a few bytes anywhere.
                0 => {
                    let mut b = input.clone();
                    for _ in 0..1 + next() % 4 {
                        let i = (next() % b.len() as u64) as usize;
                        b[i] ^= 1 << (next() % 8);
                    }
                    b
                }
                // Drop a line.
                1 => {
                    let skip = (next() % lines.len() as u64) as usize;
                    let kept = lines.iter().enumerate().filter(|(i, _)| *i != skip);
                    kept.flat_map(|(_, l)| l.iter().copied()).collect()
                }
                // Repeat a line.
                _ => {
                    let dup = (next() % lines.len() as u64) as usize;
                    let mut b = vec![];
                    for (i, l) in lines.iter().enumerate() {
                        b.extend_from_slice(l);
                        if i == dup {
                            b.extend_from_slice(l);
                        }
                    }
                    b
                }
            };
            // Sometimes also cut the tail.
            if next() % 4 == 0 {
                bytes.truncate((next() % bytes.len() as u64) as usize);
            }
            let sinks: Vec<Box<dyn Sink>> = vec![
                Box::new(TextSink::new(std::io::sink())),
                Box::new(JsonSink::new(std::io::sink())),
                Box::new(PerfettoSink::new(std::io::sink())),
                Box::new(ReportSink::create(&report).unwrap()),
            ];
            match map_trace::recording::replay(bytes.as_slice(), Box::new(Tee(sinks))) {
                Ok(()) => ok += 1,
                Err(e) => {
                    assert!(e.is_bad_input(), "{e}");
                    failed += 1;
                }
            }
        }
    }
    // Both outcomes occur: a flipped bit in a record's bytes is a different, valid record.
    assert!(ok > 0 && failed > 0, "{ok} replayed, {failed} rejected");
    let _ = std::fs::remove_dir_all(&dir);
}
