//! Cross-check against a tracer nobody here wrote: the kernel's own uprobe_events, placed at the
//! same file offset, must see the same (map, B, entries) for every grow of the fixture's maps.

use std::collections::BTreeSet;

use map_trace_e2e::*;

#[test]
fn test_grows_match_kernel_uprobe_events() {
    require_root();
    let args = if cfg!(target_arch = "aarch64") {
        "h=%x1:x64 count=+0(%x1):u64 B=+9(%x1):u8"
    } else {
        "h=%bx:x64 count=+0(%bx):u64 B=+9(%bx):u8"
    };
    for v in classic_versions() {
        let fx = fixture(&v);
        // map-trace tells where it probes; the kernel probe goes to the same file offset.
        let (events, f) = trace_json(&fx, &[], &["int", "10"]);
        assert!(f.status.success());
        let probe = format!(
            "{}:{} {args}",
            fx.display(),
            probe_offset(&events[0], "hashGrow", 0x20)
        );
        let ((events, f), lines) = with_kernel_probe(
            "maptrace_e2e",
            "hg",
            &probe,
            || trace_json(&fx, &[], &["goroutines", "30000", "3"]),
            |(e, _)| e[0]["pid"].as_u64().unwrap(),
        );
        assert!(f.status.success());
        let ours: BTreeSet<(u64, u64, u64)> = events
            .iter()
            .filter(|e| e["event"] == "map_grow")
            .map(|e| {
                let b = e["buckets_before"].as_u64().unwrap().trailing_zeros() as u64;
                (hex_field(&e["map"]), b, e["entries"].as_u64().unwrap())
            })
            .collect();
        let kernel: BTreeSet<(u64, u64, u64)> =
            lines.iter().map(|l| (l["h"], l["B"], l["count"])).collect();
        // The fixture's own maps must be there with the exact count; and map-trace must have
        // seen exactly what the kernel saw (the runtime's own maps included).
        let maps = fixture_maps(&f.stderr);
        assert_eq!(maps.len(), 3);
        for (p, _) in &maps {
            let m = u64::from_str_radix(p.trim_start_matches("0x"), 16).unwrap();
            let n = kernel.iter().filter(|k| k.0 == m).count();
            assert_eq!(
                n,
                expected_sequential(30000, load_factor_num(&v)).len(),
                "go{v}: kernel saw {n} grows of {m:#x}"
            );
        }
        assert_eq!(ours, kernel, "go{v}: map-trace and uprobe_events disagree");
    }
}
