//! Soak: 200 short-lived Go processes of four executables over a few minutes, so the agent
//! attaches, detaches and forgets state again and again. Its open file descriptors must not
//! exceed the baseline and its memory must stay within a small bound: nothing leaks.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use map_trace_e2e::*;

/// (resident KiB, open fds, CPU seconds) of a process.
fn usage(pid: u32) -> (u64, usize, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / hz;
    (rss, fds, cpu)
}

#[test]
fn soak_200_short_lived_processes_leave_no_trace_in_the_agent() {
    require_root();
    let (classic, swiss) = (classic_versions(), swiss_versions());
    let exes = [
        fixture(&classic[0]),
        fixture_variant(&swiss[0], "-stripped"),
        fixture_variant(&classic[classic.len() - 1], "-pie"),
        fixture(&swiss[swiss.len() - 1]),
    ];
    let agent = Agent::start(&[]);
    let pid = agent.child.as_ref().unwrap().id();
    let run = |i: usize| {
        let s = Command::new(&exes[i % exes.len()])
            .args(["int", "5000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(s.success());
        // Each executable is idle for ~2.4 s between its runs: longer than the agent's 1 s
        // liveness check, so its probes are detached and attached again every time.
        std::thread::sleep(Duration::from_millis(600));
    };
    let idle = |agent: &Agent| {
        agent.wait_until(Duration::from_secs(15), "all processes gone", |m| {
            sample(m, "map_trace_attached_processes", &[]) == 0.0
                && sample(m, "map_trace_attached_executables", &[]) == 0.0
        });
        // Let the agent close the connection of that last scrape before counting fds.
        std::thread::sleep(Duration::from_millis(500));
    };
    // Warm-up: every executable attached and detached once (allocator pools, caches).
    for i in 0..20 {
        run(i);
    }
    idle(&agent);
    let (rss0, fds0, cpu0) = usage(pid);
    let start = Instant::now();
    for i in 20..200 {
        run(i);
    }
    idle(&agent);
    let (rss1, fds1, cpu1) = usage(pid);
    let m = agent.metrics();
    let attaches = sample(&m, "map_trace_attach_delay_seconds_count", &[]);
    eprintln!(
        "soak: 180 processes in {:?}; {attaches} attaches; agent RSS {rss0} → {rss1} KiB, \
         fds {fds0} → {fds1}, CPU {:.2} s over the run",
        start.elapsed(),
        cpu1 - cpu0
    );
    // A run lasts a few ms: when it is over before the agent reads /proc for its exec, that
    // executable is not attached this time (about a third of runs here). The rest attach.
    assert!(
        attaches >= 60.0,
        "expected re-attachment churn, got {attaches} attaches"
    );
    assert!(fds1 <= fds0, "file descriptors leaked: {fds0} → {fds1}");
    assert!(
        rss1 <= rss0 + 8 * 1024,
        "agent memory grew from {rss0} to {rss1} KiB"
    );
    let (f, _) = agent.stop();
    assert!(f.status.success());
}
