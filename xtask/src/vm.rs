//! `cargo xtask vm-test`: the real map-trace binary inside QEMU guests running Debian kernels,
//! arm64 and amd64, new and old (5.10). Emulation only (TCG): nested KVM does not work here.
//!
//! Per guest: a static musl map-trace for the guest's architecture (its eBPF object built for
//! that architecture), Go fixtures cross-compiled for it, busybox, and an init script that runs
//! the checks and prints `VMTEST-RESULT: PASS|FAIL` on the serial console. On arm64 guests a
//! negative control runs a map-trace carrying the x86-64 eBPF object (wrong `pt_regs` layout):
//! the checks must catch it. Kernels and busybox come from Debian's archive through a private
//! apt configuration in the xtask cache; nothing touches the host's apt state or /boot.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{bail, Context, Result};

use crate::{
    build,
    cache::{self, output, run},
    go,
};

/// A guest of the matrix.
struct Guest {
    arch: &'static str,
    /// Package-name pattern: `{N}` stands for the number picked newest at run time.
    pattern: &'static str,
    /// Used when no newer package can be found or downloaded.
    pinned: &'static str,
}

const GUESTS: &[Guest] = &[
    Guest {
        arch: "arm64",
        pattern: "linux-image-6.1.0-{N}-arm64",
        pinned: "linux-image-6.1.0-56-arm64",
    },
    Guest {
        arch: "arm64",
        pattern: "linux-image-6.12.{N}+deb12-arm64",
        pinned: "linux-image-6.12.117+deb12-arm64",
    },
    // bullseye-security's arm64 packages are missing from the archive: pin bullseye main's.
    Guest {
        arch: "arm64",
        pattern: "",
        pinned: "linux-image-5.10.0-32-arm64=5.10.223-1",
    },
    Guest {
        arch: "amd64",
        pattern: "linux-image-5.10.0-{N}-amd64",
        pinned: "linux-image-5.10.0-46-amd64",
    },
];

/// Go releases whose fixtures run in the guests: one classic, one Swiss.
const GO_CLASSIC: &str = "1.23.9";
const GO_SWISS: &str = "1.27.3";

const SOURCES: &str = "deb [arch=amd64,arm64] http://deb.debian.org/debian bookworm main
deb [arch=amd64,arm64] http://deb.debian.org/debian bookworm-updates main
deb [arch=amd64,arm64] http://deb.debian.org/debian-security bookworm-security main
deb [arch=amd64,arm64] http://deb.debian.org/debian bullseye main
deb [arch=amd64,arm64] http://deb.debian.org/debian-security bullseye-security main
";

fn work() -> PathBuf {
    cache::dir().join("vm")
}

fn apt_opts() -> Vec<String> {
    let w = work();
    vec![
        "-o".into(),
        format!(
            "Dir::Etc::SourceList={}",
            w.join("apt/sources.list").display()
        ),
        "-o".into(),
        "Dir::Etc::SourceParts=/dev/null".into(),
        "-o".into(),
        format!("Dir::State::Lists={}", w.join("apt/lists").display()),
        "-o".into(),
        format!("Dir::Cache={}", w.join("apt/cache").display()),
        "-o".into(),
        "Dir::State::status=/dev/null".into(),
        "-o".into(),
        "APT::Architectures::=amd64".into(),
        "-o".into(),
        "APT::Architectures::=arm64".into(),
        "-o".into(),
        "APT::Sandbox::User=root".into(),
        "-o".into(),
        "Debug::NoLocking=1".into(),
    ]
}

fn ensure_host_tools() -> Result<()> {
    let have = |b: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {b}"))
            .output()
            .is_ok_and(|o| o.status.success())
    };
    // One package at a time, without recommends: asking apt for all three at once makes its
    // resolver give up on this image.
    for (bin, pkg) in [
        ("qemu-system-aarch64", "qemu-system-arm"),
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("cpio", "cpio"),
    ] {
        if !have(bin) {
            run(Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends", pkg])
                .env("DEBIAN_FRONTEND", "noninteractive"))?;
        }
    }
    Ok(())
}

fn apt_update() -> Result<()> {
    let w = work();
    for d in ["apt/lists/partial", "apt/cache/archives/partial", "debs"] {
        fs::create_dir_all(w.join(d))?;
    }
    fs::write(w.join("apt/sources.list"), SOURCES)?;
    let stamp = w.join("apt/.updated");
    let fresh = fs::metadata(&stamp)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|e| e.as_secs() < 12 * 3600));
    if !fresh {
        run(Command::new("apt-get")
            .args(apt_opts())
            .args(["update", "-qq"]))?;
        fs::write(stamp, b"")?;
    }
    Ok(())
}

/// Newest package matching `pattern` (its `{N}` numeric), if the lists know one.
fn newest(pattern: &str) -> Option<String> {
    let (prefix, suffix) = pattern.split_once("{N}")?;
    let names = output(
        Command::new("apt-cache")
            .args(apt_opts())
            .args(["pkgnames", prefix]),
    )
    .ok()?;
    names
        .lines()
        .filter_map(|n| {
            let mid = n.strip_prefix(prefix)?.strip_suffix(suffix)?;
            mid.parse::<u32>().ok().map(|v| (v, n.to_string()))
        })
        .max()
        .map(|(_, n)| n)
}

/// Downloads (once) and returns the .deb for `spec` (`name[=version]`) of `arch`.
fn download(spec: &str, arch: &str) -> Result<PathBuf> {
    let debs = work().join("debs");
    let name = spec.split('=').next().unwrap_or(spec);
    let find = || -> Option<PathBuf> {
        fs::read_dir(&debs)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                let f = p.file_name().and_then(|f| f.to_str()).unwrap_or("");
                f.starts_with(&format!("{name}_")) && f.ends_with(&format!("_{arch}.deb"))
            })
    };
    if let Some(p) = find() {
        return Ok(p);
    }
    let (n, v) = match spec.split_once('=') {
        Some((n, v)) => (n, format!("={v}")),
        None => (spec, String::new()),
    };
    let mut ok = false;
    for _ in 0..3 {
        // A failed download may be retried; a wrong result never is.
        let st = Command::new("apt-get")
            .args(apt_opts())
            .args(["download", "-qq", &format!("{n}:{arch}{v}")])
            .current_dir(&debs)
            .status()?;
        if st.success() {
            ok = true;
            break;
        }
    }
    if !ok {
        bail!("apt-get download {spec}:{arch} failed");
    }
    find().with_context(|| format!("{spec}: downloaded but not found"))
}

fn unpack(deb: &Path, dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let tmp = dir.with_extension("partial");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&tmp))?;
    fs::rename(&tmp, dir)?;
    Ok(())
}

/// Per-architecture artifacts: map-trace, the negative control, fixtures.
struct Artifacts {
    map_trace: PathBuf,
    wrong_abi: Option<PathBuf>,
    classic: PathBuf,
    swiss: PathBuf,
}

fn artifacts(arch: &str, tools: &build::Tools, objs: &[(String, PathBuf)]) -> Result<Artifacts> {
    let (bpf, target, goarch) = match arch {
        "arm64" => ("aarch64", "aarch64-unknown-linux-musl", "arm64"),
        _ => ("x86_64", "x86_64-unknown-linux-musl", "amd64"),
    };
    let _ = tools;
    let obj = &objs.iter().find(|(a, _)| a == bpf).context("object")?.1;
    let map_trace = build::build_static(target, obj, &format!("map-trace-{bpf}-linux"))?;
    let wrong_abi = if arch == "arm64" {
        let x86 = &objs
            .iter()
            .find(|(a, _)| a == "x86_64")
            .context("object")?
            .1;
        Some(build::build_static(
            target,
            x86,
            "map-trace-aarch64-with-x86_64-object",
        )?)
    } else {
        None
    };
    let dir = cache::target_dir().join("vm").join(arch);
    let src = cache::root().join("fixtures/go/growth");
    let classic = dir.join("growth-classic");
    let swiss = dir.join("growth-swiss");
    go::build(GO_CLASSIC, &src, &classic, &[], &[("GOARCH", goarch)])?;
    go::build(GO_SWISS, &src, &swiss, &[], &[("GOARCH", goarch)])?;
    Ok(Artifacts {
        map_trace,
        wrong_abi,
        classic,
        swiss,
    })
}

/// The guest's /init: runs the checks, prints the verdict, powers off.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
# No tracefs or debugfs is mounted: neither the CLI (uprobes through the perf uprobe PMU) nor
# the agent (the exec raw tracepoint) needs one.
ip link set lo up 2>/dev/null
echo "VMTEST: kernel=$(uname -r) machine=$(uname -m) memlock=$(ulimit -l)"
fail=0
# check NAME BINARY FIXTURE MIN [MAX]: traces `FIXTURE int 100000`; its own map must show
# MIN to MAX events (exactly MIN without MAX), all on goroutine 1, none partial, no zero
# Swiss durations.
check() {
  name=$1; mt=$2; fx=$3; want=$4; max=${5:-$4}
  t0=$(cut -d' ' -f1 /proc/uptime)
  $mt --max-overhead 0 --format json -o /tmp/out.json -- $fx int 100000 >/tmp/fx.out 2>/tmp/err; rc=$?
  t1=$(cut -d' ' -f1 /proc/uptime)
  map=$(grep '^mapptr ' /tmp/err | cut -d' ' -f2)
  grep "\"map\":\"$map\"" /tmp/out.json | grep '"event":"map_' >/tmp/mine
  n=$(wc -l </tmp/mine)
  badgoid=$(grep -vc '"goid":1,' /tmp/mine)
  partial=$(grep -c '"partial":true' /tmp/mine)
  zero=$(grep -c '"duration_ns":0,' /tmp/mine)
  lost=$(tail -n1 /tmp/out.json | sed 's/.*"lost":\([0-9]*\).*/\1/')
  ok=no
  [ "$rc" = 0 ] && [ "$n" -ge "$want" ] && [ "$n" -le "$max" ] && [ "$badgoid" = 0 ] && [ "$partial" = 0 ] && [ "$zero" = 0 ] && ok=yes
  echo "VMTEST: $name rc=$rc map=$map events=$n want=$want-$max bad_goid=$badgoid partial=$partial zero_durations=$zero lost=$lost seconds=$(awk "BEGIN{print $t1-$t0}") ok=$ok"
  [ $ok = yes ] || { grep -m3 . /tmp/err; head -c 600 /tmp/out.json; echo; }
  [ $ok = yes ]
}
# sequence NAME WANT: the fixture map's events from the last check, summarized, must equal WANT.
sequence() {
  got=$(echo $(eval "$2")); want=$(echo $3)
  if [ "$got" = "$want" ]; then echo "VMTEST: $1 sequence ok: $got"; else echo "VMTEST: $1 sequence MISMATCH: got [$got] want [$want]"; fail=1; fi
}
# Classic: 14 map_grow and 14 map_evacuated (every growth finished; the probe on the block
# that ends advanceEvacuationMark, decoded for this architecture).
check classic-go /test/map-trace /test/growth-classic 28 || fail=1
sequence classic-go "grep map_grow /tmp/mine | grep -o '\"buckets_after\":[0-9]*' | cut -d: -f2 | tr '\n' ' '" \
  "2 4 8 16 32 64 128 256 512 1024 2048 4096 8192 16384 "
sequence classic-go-ends "grep map_evacuated /tmp/mine | grep -o '\"buckets\":[0-9]*' | cut -d: -f2 | tr '\n' ' '" \
  "2 4 8 16 32 64 128 256 512 1024 2048 4096 8192 16384 "
# Swiss: 1 small->table, 6 grows 16->...->1024, then 125-130 splits (how many depends on the
# per-run hash seed; 127 in nearly every run).
check swiss-go /test/map-trace /test/growth-swiss 132 137 || fail=1
sequence swiss-go "echo \$(grep -c map_small_to_table /tmp/mine) \$(grep -c map_table_grow /tmp/mine) \$(grep map_table_grow /tmp/mine | grep -o '\"capacity_after\":[0-9]*' | cut -d: -f2 | tr '\n' ' ')" \
  "1 6 32 64 128 256 512 1024 "
if [ -x /test/wrong-abi ]; then
  # Negative control: the x86-64 register layout on arm64 must not pass the same check.
  if check negative-control /test/wrong-abi /test/growth-classic 28; then
    echo "VMTEST: negative control NOT detected"; fail=1
  else
    echo "VMTEST: negative control detected (wrong register mapping fails the check)"
  fi
fi
# waitfor FILE TEXT: up to 60 s for TEXT to appear in FILE.
waitfor() {
  i=0; while ! grep -q "$2" "$1" && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
  grep -q "$2" "$1"
}
# health NAME FIXTURE: map sampling with this architecture's heap layout (process_vm_readv,
# mheap_ arenas and spans): the fixture's health phases in launch mode, fed one line at a
# time. Every dropped map must be reported freed, and the big map kept after deletes.
health() {
  name=$1; fx=$2
  rm -f /tmp/hin; mkfifo /tmp/hin
  /test/map-trace --max-overhead 0 --format json --sample-interval 200ms -o /tmp/h.json -- $fx -wait -hold health 20 1000 </tmp/hin >/dev/null 2>/tmp/h.err &
  mpid=$!
  exec 4>/tmp/hin
  waitfor /tmp/h.err ready
  echo go >&4; waitfor /tmp/h.err "phase filled"; sleep 3
  echo next >&4; waitfor /tmp/h.err "phase dropped"; sleep 3
  echo next >&4; waitfor /tmp/h.err "phase reused"; sleep 1
  echo next >&4; waitfor /tmp/h.err "phase emptied"; sleep 1
  echo next >&4; waitfor /tmp/h.err "^done"
  echo exit >&4; exec 4>&-; wait $mpid; rc=$?
  dropped=$(grep -c '^dropped ' /tmp/h.err)
  freed=0
  for m in $(grep '^dropped ' /tmp/h.err | cut -d' ' -f2); do
    grep -q "\"event\":\"map_freed\",\"time_ns\":[0-9]*,\"map\":\"$m\"" /tmp/h.json && freed=$((freed+1))
  done
  big=$(grep '^big ' /tmp/h.err | cut -d' ' -f2)
  kept=$(grep '"event":"map_kept_after_deletes"' /tmp/h.json | grep -c "\"map\":\"$big\"")
  samples=$(grep -c '"event":"map_sample"' /tmp/h.json)
  ok=no; [ "$rc" = 0 ] && [ "$dropped" = 20 ] && [ "$freed" = 20 ] && [ "$kept" = 1 ] && [ "$samples" -gt 0 ] && ok=yes
  echo "VMTEST: $name health rc=$rc samples=$samples dropped=$dropped freed=$freed kept_after_deletes=$kept ok=$ok"
  [ $ok = yes ] || { grep -m5 . /tmp/h.err; tail -c 400 /tmp/h.json; echo; }
  [ $ok = yes ]
}
health classic-go /test/growth-classic || fail=1
health swiss-go /test/growth-swiss || fail=1
# discover NAME FIXTURE: maps that grew before a --pid attach are found by the --discover
# window's probes on the map access functions (this architecture's argument registers and
# caller chain): the fixture's old map must be reported discovered and kept after deletes.
discover() {
  name=$1; fx=$2
  rm -f /tmp/din; mkfifo /tmp/din
  $fx -wait -hold old 200000 </tmp/din >/dev/null 2>/tmp/d.err &
  fxpid=$!
  exec 5>/tmp/din
  waitfor /tmp/d.err ready
  echo go >&5; waitfor /tmp/d.err "phase built"
  /test/map-trace --pid $fxpid --max-overhead 0 --format json --sample-interval 200ms --discover 1s --duration 4 -o /tmp/d.json 2>/tmp/dmt.err; rc=$?
  echo stop >&5; waitfor /tmp/d.err "^done"; echo exit >&5; exec 5>&-; wait $fxpid
  big=$(grep '^oldbig ' /tmp/d.err | cut -d' ' -f2)
  kept=$(grep '"event":"map_kept_after_deletes"' /tmp/d.json | grep "\"map\":\"$big\"" | grep -c '"discovered":true')
  added=$(tail -n1 /tmp/d.json | grep -o '"added":[0-9]*' | cut -d: -f2)
  ok=no; [ "$rc" = 0 ] && [ "$kept" = 1 ] && [ "${added:-0}" -ge 2 ] && ok=yes
  echo "VMTEST: $name discover rc=$rc kept_after_deletes=$kept added=$added ok=$ok"
  [ $ok = yes ] || { grep -m5 . /tmp/dmt.err; tail -c 400 /tmp/d.json; echo; }
  [ $ok = yes ]
}
discover classic-go /test/growth-classic || fail=1
discover swiss-go /test/growth-swiss || fail=1
# crash NAME FIXTURE MODE FUNCTION: two goroutines misuse one map until the runtime kills the
# fixture; map-trace, attached by pid, must report the misusing function and the fixture's own
# map (found in this architecture's frames), and the fixture must still exit 2.
crash() {
  name=$1; fx=$2; mode=$3; func=$4
  # The previous run's files would answer the waits below before this run wrote anything.
  rm -f /tmp/cin /tmp/c.err /tmp/cmt.err /tmp/c.json; touch /tmp/c.err /tmp/cmt.err; mkfifo /tmp/cin
  $fx -wait $mode 64 </tmp/cin >/dev/null 2>/tmp/c.err &
  fxpid=$!
  exec 6>/tmp/cin
  waitfor /tmp/c.err ready
  /test/map-trace --pid $fxpid --format json --discover 0 -o /tmp/c.json 2>/tmp/cmt.err &
  mtpid=$!
  waitfor /tmp/cmt.err "attached"
  echo go >&6; exec 6>&-
  wait $fxpid; frc=$?
  wait $mtpid; rc=$?
  map=$(grep '^crashmap ' /tmp/c.err | cut -d' ' -f2)
  # Record lines only: the summary line repeats them in its concurrent_writes array.
  n=$(grep '^{"event":"map_concurrent_write"' /tmp/c.json | grep "\"function\":\"$func\"" | grep -c "\"map\":\"$map\"")
  ok=no; [ "$rc" = 0 ] && [ "$frc" = 2 ] && [ "$n" -ge 1 ] && [ "$n" -le 2 ] && ok=yes
  echo "VMTEST: $name crash $mode rc=$rc target_exit=$frc records_with_map=$n ok=$ok"
  grep '^{"event":"map_concurrent_write"' /tmp/c.json | grep -o '"goid":[0-9]*\|"map":[^,]*,"map_found":"[^"]*"' | tr '\n' ' '; echo
  [ $ok = yes ] || { grep -m5 . /tmp/cmt.err; grep -m2 concurrent /tmp/c.json; }
  [ $ok = yes ]
}
# Call sites (the fixture's sites mode): every grow of each case's map is sited at the user's
# function that called in: the inlined helper (marked inlined), the generic function,
# reflection's caller, json.Unmarshal's (9 return addresses deep: the default --stack-depth
# reaches it), maps.Copy's, maps.Insert's and maps.Collect's.
sites() {
  name=$1; fx=$2
  /test/map-trace --format json -o /tmp/s.json -- $fx sites 200 >/dev/null 2>/tmp/s.err; rc=$?
  res=""; ok=yes
  for c in put:main.put generic:main.gput json:main.sitesJSON reflect:main.sitesReflect copy:main.sitesCopy insert:main.sitesInsert collect:main.sitesCollect; do
    case=${c%%:*}; func=${c#*:}
    map=$(grep "^sitecase $case " /tmp/s.err | cut -d' ' -f3)
    all=$(grep '^{"event":"map_' /tmp/s.json | grep -v '"event":"map_evacuated"' | grep -c "\"map\":\"$map\"")
    good=$(grep '^{"event":"map_' /tmp/s.json | grep -v '"event":"map_evacuated"' | grep "\"map\":\"$map\"" | grep -c "\"site\":{\"function\":\"$func[\"[]")
    res="$res $case=$good/$all"
    [ "$all" -ge 1 ] && [ "$good" = "$all" ] || ok=no
  done
  inl=$(grep -c '"site":{"function":"main.put","file":"growth/sites.go","line":[0-9]*,"inlined":true}' /tmp/s.json)
  [ "$rc" = 0 ] && [ "$inl" -ge 1 ] || ok=no
  echo "VMTEST: $name sites rc=$rc$res put_inlined=$inl ok=$ok"
  [ $ok = yes ] || { grep -m5 . /tmp/s.err; }
  [ $ok = yes ]
}
sites classic-go /test/growth-classic || fail=1
sites swiss-go /test/growth-swiss || fail=1
crash classic-go /test/growth-classic race main.raceWriter || fail=1
crash classic-go /test/growth-classic iterrace main.iterReader || fail=1
crash swiss-go /test/growth-swiss race main.raceWriter || fail=1
crash swiss-go /test/growth-swiss iterrace main.iterReader || fail=1
# The agent: from Linux 5.15 it must attach to a fixture started after it (announced by the
# exec raw tracepoint, with no tracefs) and count its 14 grows at main.fillInt; before 5.15
# it must refuse with exit 3 (no BPF attach cookies).
{
  major=$(uname -r | cut -d. -f1); minor=$(uname -r | cut -d. -f2)
  # Exact counts: no overhead budget (an emulated guest makes every probe hit look costly).
  /test/map-trace agent --max-overhead 0 --metrics-addr 127.0.0.1:9464 >/tmp/agent.out 2>/tmp/agent.err &
  apid=$!
  if [ "$major" -gt 5 ] || { [ "$major" = 5 ] && [ "$minor" -ge 15 ]; }; then
    waitfor /tmp/agent.err "serving"
    # Started after the agent, held until its probes are live, so every grow is seen.
    mkfifo /tmp/fxin
    /test/growth-classic -wait -hold int 100000 </tmp/fxin >/dev/null 2>/tmp/fx.err &
    fxpid=$!
    exec 3>/tmp/fxin
    waitfor /tmp/fx.err ready && waitfor /tmp/agent.err "for pid $fxpid"
    echo go >&3
    waitfor /tmp/fx.err done
    sleep 2
    wget -qO /tmp/metrics http://127.0.0.1:9464/metrics
    echo exit >&3; exec 3>&-; wait $fxpid
    grows=$(grep '^map_trace_map_grows_total{' /tmp/metrics | grep 'site="main.fillInt' | sed 's/.* //' | awk '{s+=$1} END {print s+0}')
    raw=$(grep -c "exec notifications from the raw tracepoint" /tmp/agent.err)
    mounts=$(grep -cE " - (tracefs|debugfs) " /proc/$apid/mountinfo)
    kill -TERM $apid; wait $apid; arc=$?
    ok=no; [ "$grows" = 14 ] && [ "$raw" = 1 ] && [ "$mounts" = 0 ] && [ "$arc" = 0 ] && ok=yes
    echo "VMTEST: agent grows=$grows raw_tracepoint_logged=$raw trace_mounts=$mounts exit=$arc ok=$ok"
    [ $ok = yes ] || { fail=1; grep -m5 . /tmp/agent.err; }
  else
    wait $apid; arc=$?
    ok=no; [ "$arc" = 3 ] && ok=yes
    echo "VMTEST: agent refused on $(uname -r) exit=$arc ok=$ok: $(head -n1 /tmp/agent.err)"
    [ $ok = yes ] || fail=1
  fi
}
if [ $fail = 0 ]; then r=PASS; else r=FAIL; fi
echo "VMTEST-RESULT: $r kernel=$(uname -r) arch=$(uname -m)"
poweroff -f
"#;

fn initramfs(arch: &str, a: &Artifacts, busybox: &Path) -> Result<PathBuf> {
    let dir = cache::target_dir().join("vm").join(arch);
    let root = dir.join("rootfs");
    let _ = fs::remove_dir_all(&root);
    for d in ["bin", "dev", "proc", "sys", "tmp", "test"] {
        fs::create_dir_all(root.join(d))?;
    }
    fs::copy(busybox, root.join("bin/busybox"))?;
    fs::copy(&a.map_trace, root.join("test/map-trace"))?;
    fs::copy(&a.classic, root.join("test/growth-classic"))?;
    fs::copy(&a.swiss, root.join("test/growth-swiss"))?;
    if let Some(w) = &a.wrong_abi {
        fs::copy(w, root.join("test/wrong-abi"))?;
    }
    fs::write(root.join("init"), INIT)?;
    run(Command::new("chmod").args(["-R", "a+rx"]).arg(&root))?;
    let initrd = dir.join("initrd.gz");
    run(Command::new("sh").arg("-c").arg(format!(
        "cd '{}' && find . | cpio -o -H newc --owner=0:0 --quiet | gzip -1 > '{}'",
        root.display(),
        initrd.display()
    )))?;
    Ok(initrd)
}

fn boot(arch: &str, kernel: &Path, initrd: &Path, log: &Path) -> Result<bool> {
    let (qemu, console) = if arch == "arm64" {
        ("qemu-system-aarch64", "ttyAMA0")
    } else {
        ("qemu-system-x86_64", "ttyS0")
    };
    let mut c = Command::new("timeout");
    c.arg("900").arg(qemu).args([
        "-nographic",
        "-no-reboot",
        "-nic",
        "none",
        "-smp",
        "2",
        "-m",
        "1024",
    ]);
    c.arg("-kernel").arg(kernel).arg("-initrd").arg(initrd);
    if arch == "arm64" {
        c.args([
            "-M",
            "virt",
            "-accel",
            "tcg,thread=multi",
            "-cpu",
            "max,pauth-impdef=on",
        ]);
    } else {
        c.args(["-M", "pc", "-accel", "tcg,thread=multi", "-cpu", "max"]);
    }
    c.arg("-append").arg(format!(
        "console={console} panic=-1 rdinit=/init quiet loglevel=4"
    ));
    let out = c.stdin(std::process::Stdio::null()).output()?;
    let serial = String::from_utf8_lossy(&out.stdout).into_owned();
    fs::write(log, &serial)?;
    for l in serial.lines().filter(|l| l.starts_with("VMTEST")) {
        println!("    {}", l.trim_end());
    }
    Ok(serial.lines().any(|l| l.starts_with("VMTEST-RESULT: PASS")))
}

/// Runs the VM matrix; fails if any guest fails.
pub fn vm_test() -> Result<()> {
    ensure_host_tools()?;
    apt_update()?;
    let tools = build::setup_rust()?;
    go::ensure(GO_CLASSIC)?;
    go::ensure(GO_SWISS)?;
    let objs: Vec<(String, PathBuf)> = ["x86_64", "aarch64"]
        .iter()
        .map(|a| build::build_ebpf_for(&tools, a).map(|p| (a.to_string(), p)))
        .collect::<Result<_>>()?;
    let mut failed = vec![];
    let mut summary = vec![];
    for arch in ["arm64", "amd64"] {
        let a = artifacts(arch, &tools, &objs)?;
        let bb = download("busybox-static", arch)?;
        let bbdir = work().join(arch).join("busybox");
        unpack(&bb, &bbdir)?;
        let initrd = initramfs(arch, &a, &bbdir.join("bin/busybox"))?;
        for g in GUESTS.iter().filter(|g| g.arch == arch) {
            let picked = newest(g.pattern).filter(|_| !g.pattern.is_empty());
            let deb = match picked.as_deref().map(|p| download(p, arch)) {
                Some(Ok(d)) => d,
                _ => download(g.pinned, arch)?,
            };
            let kname = deb
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("kernel")
                .to_string();
            let kdir = work().join(arch).join(&kname);
            unpack(&deb, &kdir)?;
            let vmlinuz = fs::read_dir(kdir.join("boot"))?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| {
                    p.file_name()
                        .and_then(|f| f.to_str())
                        .is_some_and(|f| f.starts_with("vmlinuz-"))
                })
                .context("no vmlinuz in the kernel package")?;
            println!("vm-test: {arch} {kname}");
            let t0 = Instant::now();
            let log = cache::target_dir()
                .join("vm")
                .join(format!("serial-{kname}.log"));
            let pass = boot(arch, &vmlinuz, &initrd, &log)?;
            let secs = t0.elapsed().as_secs_f64();
            println!(
                "vm-test: {arch} {kname}: {} in {secs:.1} s (serial log {})",
                if pass { "PASS" } else { "FAIL" },
                log.display()
            );
            summary.push(format!(
                "{arch} {kname}: {} {secs:.1} s",
                if pass { "PASS" } else { "FAIL" }
            ));
            if !pass {
                failed.push(kname);
            }
        }
    }
    println!("vm-test summary:\n  {}", summary.join("\n  "));
    if !failed.is_empty() {
        bail!("VM guests failed: {}", failed.join(", "));
    }
    Ok(())
}
