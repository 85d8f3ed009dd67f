//! Cross-check against a tracer nobody here wrote: the kernel's own uprobe_events, placed at the
//! same file offset, must see the same (map, B, entries) for every grow of the fixture's map.

use std::{collections::BTreeSet, fs, io::Write, os::unix::fs::OpenOptionsExt, path::Path};

use map_trace_e2e::*;

const TRACEFS: &str = "/sys/kernel/tracing";
const GROUP: &str = "maptrace_e2e";

fn tracefs() {
    if !Path::new(TRACEFS).join("uprobe_events").exists() {
        let st = std::process::Command::new("mount")
            .args(["-t", "tracefs", "nodev", TRACEFS])
            .status()
            .unwrap();
        assert!(st.success(), "mounting tracefs");
    }
}

fn append(file: &str, text: &str) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_APPEND)
        .open(Path::new(TRACEFS).join(file))?;
    f.write_all(text.as_bytes())
}

/// The tgid in a trace line written with `options/record-tgid`: `comm-tid (  tgid) [cpu] …`.
fn tgid_of(line: &str) -> Option<u64> {
    let open = line.find('(')?;
    let close = open + line[open..].find(')')?;
    line[open + 1..close].trim().parse().ok()
}

#[test]
fn test_grows_match_kernel_uprobe_events() {
    require_root();
    tracefs();
    for v in classic_versions() {
        let fx = fixture(&v);
        // map-trace tells where it probes; the kernel probe goes to the same file offset.
        let out = temp(&format!("oracle-probe-{v}.json"));
        let f = map_trace(&[
            "--format",
            "json",
            "-o",
            out.to_str().unwrap(),
            "--",
            fx.to_str().unwrap(),
            "int",
            "10",
        ]);
        assert!(f.status.success());
        let start = json_lines(&fs::read_to_string(&out).unwrap())[0].clone();
        let file_offset = start["probes"][0]["file_offset"]
            .as_str()
            .unwrap()
            .to_string();

        let _ = fs::write(
            Path::new(TRACEFS).join(format!("events/{GROUP}/enable")),
            "0",
        );
        let _ = append("uprobe_events", &format!("-:{GROUP}/hg\n"));
        fs::write(Path::new(TRACEFS).join("trace"), "").unwrap();
        // Goroutines run on many threads: have each line carry the process id, "comm-tid (tgid)".
        let tgid_opt = Path::new(TRACEFS).join("options/record-tgid");
        let previous = fs::read_to_string(&tgid_opt).unwrap_or_else(|_| "0".into());
        fs::write(&tgid_opt, "1").unwrap();
        let regs = if cfg!(target_arch = "aarch64") {
            ("%x1", "+0(%x1)", "+9(%x1)")
        } else {
            ("%bx", "+0(%bx)", "+9(%bx)")
        };
        append(
            "uprobe_events",
            &format!(
                "p:{GROUP}/hg {}:{file_offset} h={}:x64 count={}:u64 B={}:u8\n",
                fx.display(),
                regs.0,
                regs.1,
                regs.2
            ),
        )
        .expect("writing uprobe_events");
        fs::write(
            Path::new(TRACEFS).join(format!("events/{GROUP}/hg/enable")),
            "1",
        )
        .unwrap();

        let out = temp(&format!("oracle-{v}.json"));
        let f = map_trace(&[
            "--format",
            "json",
            "-o",
            out.to_str().unwrap(),
            "--",
            fx.to_str().unwrap(),
            "goroutines",
            "30000",
            "3",
        ]);
        assert!(f.status.success());

        fs::write(
            Path::new(TRACEFS).join(format!("events/{GROUP}/hg/enable")),
            "0",
        )
        .unwrap();
        let trace = fs::read_to_string(Path::new(TRACEFS).join("trace")).unwrap();
        append("uprobe_events", &format!("-:{GROUP}/hg\n")).unwrap();
        fs::write(&tgid_opt, previous.trim()).unwrap();

        let events = json_lines(&fs::read_to_string(&out).unwrap());
        let pid = events[0]["pid"].as_u64().unwrap();
        let ours: BTreeSet<(u64, u64, u64)> = events
            .iter()
            .filter(|e| e["event"] == "map_grow")
            .map(|e| {
                let map =
                    u64::from_str_radix(e["map"].as_str().unwrap().trim_start_matches("0x"), 16)
                        .unwrap();
                let b = e["buckets_before"].as_u64().unwrap().trailing_zeros() as u64;
                (map, b, e["entries"].as_u64().unwrap())
            })
            .collect();
        let kernel: BTreeSet<(u64, u64, u64)> = trace
            .lines()
            .filter(|l| tgid_of(l) == Some(pid))
            .filter(|l| l.contains(" hg: "))
            .map(|l| {
                let field = |name: &str| {
                    let s = l
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix(name))
                        .unwrap();
                    if let Some(h) = s.strip_prefix("0x") {
                        u64::from_str_radix(h, 16).unwrap()
                    } else {
                        s.parse().unwrap()
                    }
                };
                (field("h="), field("B="), field("count="))
            })
            .collect();
        // The fixture's own maps are the ones that matter; both sets must contain them alike,
        // and map-trace must have seen exactly what the kernel saw.
        let fixture_maps: Vec<u64> = fixture_maps(&f.stderr)
            .iter()
            .map(|(p, _)| u64::from_str_radix(p.trim_start_matches("0x"), 16).unwrap())
            .collect();
        assert_eq!(fixture_maps.len(), 3);
        for m in &fixture_maps {
            let n = kernel.iter().filter(|k| k.0 == *m).count();
            assert_eq!(
                n,
                expected_sequential(30000, load_factor_num(&v)).len(),
                "go{v}: kernel saw {n} grows of {m:#x}"
            );
        }
        assert_eq!(ours, kernel, "go{v}: map-trace and uprobe_events disagree");
    }
}
