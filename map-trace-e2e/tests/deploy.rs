//! deploy/: the DaemonSet validates against the Kubernetes schemas offline, the alert rules
//! pass promtool, and the PrometheusRule carries exactly the rules file.

use std::process::Command;

use map_trace_e2e::{prometheus_dir, temp};

fn deploy(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

fn promtool() -> std::path::PathBuf {
    prometheus_dir().join("promtool")
}

/// The PrometheusRule's `spec:` block, de-indented.
fn prometheusrule_spec() -> String {
    let text = std::fs::read_to_string(deploy("prometheusrule.yaml")).unwrap();
    let (_, spec) = text.split_once("\nspec:\n").expect("a spec block");
    spec.lines()
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn prometheusrule_carries_the_rules_file() {
    let rules = std::fs::read_to_string(deploy("prometheus/map-trace.rules.yml")).unwrap();
    assert_eq!(prometheusrule_spec().trim_end(), rules.trim_end());
}

#[test]
fn promtool_accepts_the_rules() {
    let extracted = temp("prometheusrule-spec.yml");
    std::fs::write(&extracted, prometheusrule_spec()).unwrap();
    for file in [deploy("prometheus/map-trace.rules.yml"), extracted] {
        let out = Command::new(promtool())
            .args(["check", "rules"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool check rules {}: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn daemonset_validates_against_kubernetes_schemas() {
    let python = std::env::var("MAP_TRACE_PYTHON").unwrap_or_else(|_| "python3".into());
    let path = std::env::var_os("MAP_TRACE_KV_PYTHONPATH")
        .expect("MAP_TRACE_KV_PYTHONPATH is not set: run with `cargo xtask test`");
    let out = Command::new(python)
        .args(["-m", "kubernetes_validate", "--strict"])
        .arg(deploy("daemonset.yaml"))
        .env("PYTHONPATH", path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for kind in [
        "namespace/map-trace",
        "serviceaccount/map-trace",
        "daemonset/map-trace",
    ] {
        assert!(
            text.contains(&format!("passed for resource {kind}")),
            "{text}"
        );
    }
    // The privileges the README documents are the ones the manifest asks for.
    let manifest = std::fs::read_to_string(deploy("daemonset.yaml")).unwrap();
    assert!(manifest.contains(r#"add: ["BPF", "PERFMON", "SYS_PTRACE"]"#));
    assert!(manifest.contains("hostPID: true"));
}

/// The concurrent-misuse alert fires for a site's first crash (a counter series that appears at
/// 1, which `increase` alone never sees) and for a later one, and stops once the series is old
/// and still: `promtool test rules` on the rules file.
#[test]
fn concurrent_misuse_alert_fires_on_a_new_crash() {
    let labels = r#"executable="api",pod_uid="p1",container_id="c1",site="main.store (store.go:42)",kind="writes""#;
    let alert = |at: &str, fires: bool| {
        let exp = if fires {
            r#"
          - exp_labels: {severity: critical, executable: api, pod_uid: p1, container_id: c1, site: "main.store (store.go:42)", kind: writes}
            exp_annotations:
              summary: "api was killed by the Go runtime for a concurrent map misuse (writes) at main.store (store.go:42)"
              description: "Two goroutines used one map at once and at least one of them wrote it. Guard the map with a sync.Mutex or sync.RWMutex, or use sync.Map; go test -race finds the other goroutine.""#
                .to_string()
        } else {
            " []".to_string()
        };
        format!(
            "      - eval_time: {at}\n        alertname: GoMapConcurrentMisuse\n        exp_alerts:{exp}\n"
        )
    };
    // Absent for 5 minutes, 1 from minute 5 (the first crash), 2 from minute 40 (another).
    let test = format!(
        "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n      - series: 'map_trace_concurrent_map_fatal_total{{{labels},go_version=\"go1.23.9\"}}'\n        values: '_x5 1x34 2x20'\n    alert_rule_test:\n{}{}{}{}",
        deploy("prometheus/map-trace.rules.yml").display(),
        alert("6m", true),
        alert("30m", false),
        alert("41m", true),
        alert("58m", false),
    );
    let file = temp("concurrent-misuse-test.yml");
    std::fs::write(&file, test).unwrap();
    let out = Command::new(promtool())
        .args(["test", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
