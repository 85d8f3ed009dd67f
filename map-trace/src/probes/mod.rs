//! The only module that touches `aya::programs`: load the embedded object, hand it the layout,
//! attach and (on drop) detach the uprobes.

use std::{num::NonZeroU32, path::Path};

use anyhow::{Context, Result};
use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf},
    programs::{
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope},
        ProgramError, RawTracePoint, UProbe,
    },
    Ebpf, EbpfLoader,
};
use map_trace_common::{
    config::{Counter, ExeCost, MapLayout, COOKIE_BASE},
    event::{Discovered, DiscoveredKey},
    names,
};

use crate::plan::ProbeSite;

pub mod discovery;
mod links;
pub use links::{Link, Links};

/// The eBPF object `cargo xtask build` compiled for this architecture (empty in builds made
/// without xtask).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/map-trace.bpf.o"));

/// How the agent learns of every exec, as its start-up log names it.
pub const EXEC_ATTACH_METHOD: &str = "raw tracepoint sched_process_exec (no tracefs needed)";

/// Loaded programs and maps. Dropping it detaches every probe.
pub struct Probes {
    ebpf: Ebpf,
}

/// A probe taken out of its program ([`Probes::take_link`]); dropping it detaches it.
pub struct TakenLink(#[allow(dead_code)] aya::programs::uprobe::UProbeLink);

/// How probes find the traced process's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keying {
    /// CLI: probes attached for one process; layouts keyed by tgid.
    Process,
    /// Agent: probes on an executable for every process running it; layouts keyed by the
    /// attach cookie `COOKIE_BASE + exe id` (needs Linux 5.15).
    Executable,
}

/// Who a probe is attached for.
#[derive(Clone, Copy, Debug)]
pub enum Scope {
    /// One process, with its layout keyed by tgid.
    Process(u32),
    /// Every process running the file, with the layout keyed by this executable id.
    Executable(u32),
}

impl Scope {
    fn layout_key(self) -> u64 {
        match self {
            Scope::Process(pid) => u64::from(pid),
            Scope::Executable(id) => COOKIE_BASE + u64::from(id),
        }
    }
}

/// Entries of the CLI's `DISCOVERED` table: the maps a `--discover` window can find (an LRU
/// table: past it, the maps least recently accessed are forgotten first).
pub const DISCOVERED_ENTRIES: u32 = 32768;

/// Ring-buffer size in bytes: a power of two, at least one page.
pub fn ring_buffer_bytes(kib: u32) -> u32 {
    let page = 4096u32;
    let want = kib.saturating_mul(1024).max(page);
    want.checked_next_power_of_two().unwrap_or(1 << 31)
}

/// What went wrong in the kernel, from the error's types rather than its text: aya's
/// [`ProgramError::LoadError`] (the verifier's answer to `BPF_PROG_LOAD`) and the errno of the
/// first [`std::io::Error`] in the chain.
fn kernel_cause(err: &(dyn std::error::Error + 'static)) -> (bool, Option<i32>) {
    let (mut prog_load, mut errno) = (false, None);
    let mut cur = Some(err);
    while let Some(e) = cur {
        if matches!(
            e.downcast_ref::<ProgramError>(),
            Some(ProgramError::LoadError { .. })
        ) {
            prog_load = true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            errno = errno.or(io.raw_os_error());
        }
        cur = e.source();
    }
    (prog_load, errno)
}

/// What the kernel refused, and why; the exit code is decided from it at the edge
/// (`error::classify`). The text is the one line users see.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// EPERM from any call, or EACCES outside a program load: missing capabilities.
    #[error("{what}: {text} (need CAP_BPF and CAP_PERFMON, or root)")]
    Privileges { what: String, text: String },
    /// A program load the verifier refused.
    #[error("{what}: the kernel's BPF verifier rejected it: {text}")]
    Rejected { what: String, text: String },
    /// ESRCH: the process to attach to is gone.
    #[error("{what}: the process exited")]
    Exited { what: String },
    /// Anything else the kernel refused.
    #[error("{what}: the kernel refused: {text}")]
    Refused { what: String, text: String },
}

fn kernel_error(what: &str, err: impl std::error::Error + Send + Sync + 'static) -> anyhow::Error {
    let (prog_load, errno) = kernel_cause(&err);
    let text = format!("{:#}", anyhow::Error::new(err));
    let what = what.to_string();
    match errno {
        // EPERM: no CAP_BPF / CAP_PERFMON, whatever the call.
        Some(libc::EPERM) => KernelError::Privileges { what, text },
        // EACCES (or anything else) from BPF_PROG_LOAD is a rejected program, not a missing
        // privilege.
        _ if prog_load => KernelError::Rejected { what, text },
        Some(libc::ESRCH) => KernelError::Exited { what },
        Some(libc::EACCES) => KernelError::Privileges { what, text },
        _ => KernelError::Refused { what, text },
    }
    .into()
}

impl Probes {
    /// Loads the object with a ring buffer of `ring_bytes`, its stack reads taking
    /// `stack_depth` return addresses.
    pub fn load(ring_bytes: u32, stack_depth: u32, keying: Keying) -> Result<Self> {
        if OBJECT.is_empty() {
            anyhow::bail!(
                "this map-trace binary was built without its eBPF object; build it with \
                 `cargo xtask build`"
            );
        }
        if !crate::sys::raise_memlock_rlimit()
            && crate::kernel::release().is_some_and(|r| r < (5, 11))
        {
            eprintln!(
                "map-trace: warning: RLIMIT_MEMLOCK could not be raised (needs CAP_SYS_RESOURCE); \
                 before Linux 5.11 BPF maps count against it, so loading may fail: lower \
                 --ring-buffer-size or raise the limit"
            );
        }
        // Wake the reader when a quarter of the ring is queued; below that it drains on its
        // own timer (see session.rs), which spares the traced program a wakeup per event.
        let wakeup_bytes = u64::from(ring_bytes / 4);
        let by_cookie = u8::from(keying == Keying::Executable);
        let mut loader = EbpfLoader::new();
        // aya parses the kernel BTF here (~14 ms), which this object does not need.
        crate::timing::mark("load: loader new (kernel BTF)");
        // Per-executable costs are the agent's; the CLI's one process is costed globally.
        let exe_costs = if keying == Keying::Executable {
            4096
        } else {
            1
        };
        // Discovery is the CLI's (`--pid`): the agent's table is a token one.
        let discovered = if keying == Keying::Executable {
            64
        } else {
            DISCOVERED_ENTRIES
        };
        let ebpf = loader
            .map_max_entries(names::EVENTS_MAP, ring_bytes)
            .map_max_entries(names::EXE_COST_MAP, exe_costs)
            .map_max_entries(names::DISCOVERED_MAP, discovered)
            .override_global("WAKEUP_BYTES", &wakeup_bytes, true)
            .override_global("KEY_BY_COOKIE", &by_cookie, true)
            .override_global(
                "STACK_DEPTH",
                &stack_depth.clamp(1, map_trace_common::event::MAX_STACK_FRAMES as u32),
                true,
            )
            .load(OBJECT)
            .map_err(|e| kernel_error("loading the eBPF object", e))?;
        crate::timing::mark("load: object (maps created)");
        Ok(Self { ebpf })
    }

    /// Registers `layout` for `scope`.
    pub fn set_layout(&mut self, scope: Scope, layout: MapLayout) -> Result<()> {
        let map = self
            .ebpf
            .map_mut(names::LAYOUTS_MAP)
            .context("LAYOUTS map missing")?;
        let mut layouts: HashMap<_, u64, MapLayout> = HashMap::try_from(map)?;
        layouts
            .insert(scope.layout_key(), layout, 0)
            .context("writing the layout map")?;
        Ok(())
    }

    /// Forgets the layout of `scope` (after its probes were detached).
    pub fn remove_layout(&mut self, scope: Scope) {
        if let Some(map) = self.ebpf.map_mut(names::LAYOUTS_MAP) {
            if let Ok(mut layouts) = HashMap::<_, u64, MapLayout>::try_from(map) {
                let _ = layouts.remove(&scope.layout_key());
            }
        }
    }

    /// Starts costing an executable's probes (agent mode): an empty [`ExeCost`] entry that its
    /// probes add their hits and handler time to. Call before attaching them.
    pub fn add_exe_cost(&mut self, id: u32) -> Result<()> {
        let map = self
            .ebpf
            .map_mut(names::EXE_COST_MAP)
            .context("EXE_COST map missing")?;
        let mut costs: PerCpuHashMap<_, u64, ExeCost> = PerCpuHashMap::try_from(map)?;
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| e)?;
        let zero = PerCpuValues::try_from(vec![ExeCost::default(); cpus])?;
        costs
            .insert(Scope::Executable(id).layout_key(), zero, 0)
            .context("writing the executable cost map")?;
        Ok(())
    }

    /// What an executable's probes cost so far, summed over CPUs (zero when not costed).
    pub fn exe_cost(&self, id: u32) -> ExeCost {
        let mut sum = ExeCost::default();
        let Some(map) = self.ebpf.map(names::EXE_COST_MAP) else {
            return sum;
        };
        let Ok(costs) = PerCpuHashMap::<&MapData, u64, ExeCost>::try_from(map) else {
            return sum;
        };
        if let Ok(v) = costs.get(&Scope::Executable(id).layout_key(), 0) {
            for c in v.iter() {
                sum += *c;
            }
        }
        sum
    }

    /// Stops costing an executable (after its probes were detached).
    pub fn remove_exe_cost(&mut self, id: u32) {
        if let Some(map) = self.ebpf.map_mut(names::EXE_COST_MAP) {
            if let Ok(mut costs) = PerCpuHashMap::<_, u64, ExeCost>::try_from(map) {
                let _ = costs.remove(&Scope::Executable(id).layout_key());
            }
        }
    }

    /// Attaches the exec notification (agent mode): the raw tracepoint `sched_process_exec`,
    /// through `BPF_RAW_TRACEPOINT_OPEN` (Linux 4.17+). Unlike a perf-event tracepoint it needs
    /// no tracefs (the kernel names it, no event id is read from `/sys/kernel/tracing`) and no
    /// BTF. Returns the attach method, for the start-up log.
    pub fn attach_exec(&mut self) -> Result<&'static str> {
        let prog: &mut RawTracePoint = self
            .ebpf
            .program_mut(names::PROG_SCHED_EXEC)
            .context("exec notification program missing from the eBPF object")?
            .try_into()?;
        prog.load()
            .map_err(|e| kernel_error("loading the exec raw tracepoint", e))?;
        prog.attach("sched_process_exec")
            .map_err(|e| kernel_error("attaching the raw tracepoint sched_process_exec", e))?;
        Ok(EXEC_ATTACH_METHOD)
    }

    /// Attaches one probe to `exe` for `scope`; returns a handle for [`Probes::detach`].
    pub fn attach(
        &mut self,
        site: &ProbeSite,
        exe: &Path,
        scope: Scope,
    ) -> Result<aya::programs::uprobe::UProbeLinkId> {
        let prog: &mut UProbe = self
            .ebpf
            .program_mut(site.program)
            .with_context(|| format!("program {} missing from the eBPF object", site.program))?
            .try_into()?;
        if prog.fd().is_err() {
            prog.load()
                .map_err(|e| kernel_error("loading a uprobe program", e))?;
        }
        crate::timing::mark(format_args!("  load {}", site.program));
        let location = UProbeAttachLocation::AbsoluteOffset(site.file_offset);
        let (point, scope) = match scope {
            Scope::Process(pid) => (
                UProbeAttachPoint::from(location),
                UProbeScope::OneProcess(NonZeroU32::new(pid).context("pid 0")?),
            ),
            Scope::Executable(_) => (
                UProbeAttachPoint {
                    location,
                    cookie: Some(scope.layout_key()),
                },
                UProbeScope::AllProcesses,
            ),
        };
        let r = prog.attach(point, exe, scope).map_err(|e| {
            kernel_error(
                &format!(
                    "attaching a uprobe to {} at {} (file offset {:#x})",
                    exe.display(),
                    site.function,
                    site.file_offset
                ),
                e,
            )
        });
        crate::timing::mark(format_args!(
            "  attach {}+{:#x}",
            site.function, site.offset_in_function
        ));
        r
    }

    /// Detaches one probe attached by [`Probes::attach`].
    pub fn detach(&mut self, program: &str, link: aya::programs::uprobe::UProbeLinkId) {
        if let Some(p) = self.ebpf.program_mut(program) {
            if let Ok(prog) = <&mut UProbe>::try_from(p) {
                let _ = prog.detach(link);
                crate::timing::mark(format_args!("  detach {program}"));
            }
        }
    }

    /// Takes one probe attached by [`Probes::attach`] out of its program: it stays attached
    /// until the returned link is dropped, which may be after the object is.
    pub fn take_link(
        &mut self,
        program: &str,
        link: aya::programs::uprobe::UProbeLinkId,
    ) -> Option<TakenLink> {
        let prog: &mut UProbe = self.ebpf.program_mut(program)?.try_into().ok()?;
        prog.take_link(link).ok().map(TakenLink)
    }

    /// Takes the ring buffer for a reader (`events::reader`).
    pub fn take_ring(&mut self) -> Result<crate::events::reader::Ring> {
        let map = self
            .ebpf
            .take_map(names::EVENTS_MAP)
            .context("EVENTS map missing")?;
        Ok(crate::events::reader::Ring::new(RingBuf::try_from(map)?))
    }

    /// Opens (`true`) or closes the discovery window: closed, the probes return at once.
    pub fn set_discovering(&mut self, open: bool) -> Result<()> {
        let map = self
            .ebpf
            .map_mut(names::DISCOVERING_MAP)
            .context("DISCOVERING map missing")?;
        let mut flag: Array<_, u32> = Array::try_from(map)?;
        flag.set(0, u32::from(open), 0)
            .context("writing the discovery flag")?;
        Ok(())
    }

    /// Hits per discovery probe so far, by probed address in the process, summed over CPUs.
    pub fn access_hits(&self) -> Vec<(u64, u64)> {
        let Some(map) = self.ebpf.map(names::ACCESS_HITS_MAP) else {
            return vec![];
        };
        let Ok(hits) = PerCpuHashMap::<&MapData, u64, u64>::try_from(map) else {
            return vec![];
        };
        hits.iter()
            .filter_map(Result::ok)
            .map(|(ip, v)| (ip, v.iter().sum()))
            .collect()
    }

    /// Takes what the discovery probes found in process `pid`: `(header, what was seen)`, the
    /// entries removed from the table. Entries the probes add meanwhile stay for the next call.
    pub fn take_discovered(&mut self, pid: u32) -> Vec<(u64, Discovered)> {
        let Some(map) = self.ebpf.map_mut(names::DISCOVERED_MAP) else {
            return vec![];
        };
        let Ok(mut table) = HashMap::<_, DiscoveredKey, Discovered>::try_from(map) else {
            return vec![];
        };
        let found: Vec<(DiscoveredKey, Discovered)> = table
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, _)| k.tgid == pid)
            .collect();
        for (k, _) in &found {
            let _ = table.remove(k);
        }
        found.into_iter().map(|(k, v)| (k.map, v)).collect()
    }

    /// Current value of a counter, summed over CPUs.
    pub fn counter(&self, c: Counter) -> u64 {
        let Some(map) = self.ebpf.map(names::COUNTERS_MAP) else {
            return 0;
        };
        let Ok(arr) = PerCpuArray::<&MapData, u64>::try_from(map) else {
            return 0;
        };
        arr.get(&(c as u32), 0).map(|v| v.iter().sum()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_kernel_errors_are_classified_by_type_not_text() {
        use crate::error::{classify, EXIT_BAD_TARGET, EXIT_PRIVILEGES, EXIT_UNSUPPORTED};
        let io = |n| std::io::Error::from_raw_os_error(n);
        let load = |n| ProgramError::LoadError {
            io_error: io(n),
            verifier_log: aya_obj::VerifierLog::new(String::new()),
        };
        let code = |e: anyhow::Error| classify(&e).code;
        assert_eq!(
            code(kernel_error("x", load(libc::EACCES))),
            EXIT_UNSUPPORTED
        );
        assert_eq!(
            code(kernel_error("x", load(libc::EINVAL))),
            EXIT_UNSUPPORTED
        );
        assert_eq!(code(kernel_error("x", load(libc::EPERM))), EXIT_PRIVILEGES);
        assert_eq!(code(kernel_error("x", io(libc::ESRCH))), EXIT_BAD_TARGET);
        assert_eq!(code(kernel_error("x", io(libc::EACCES))), EXIT_PRIVILEGES);
        assert_eq!(code(kernel_error("x", io(libc::ENOMEM))), EXIT_UNSUPPORTED);
        // Wrapped, as aya's attach errors wrap the syscall's.
        let wrapped = ProgramError::SyscallError(aya::sys::SyscallError {
            call: "perf_event_open",
            io_error: io(libc::ESRCH),
        });
        let msg = classify(&kernel_error("attaching", wrapped)).message;
        assert!(msg.contains("the process exited"), "{msg}");
    }

    #[test]
    fn test_ring_buffer_bytes_power_of_two() {
        assert_eq!(ring_buffer_bytes(0), 4096);
        assert_eq!(ring_buffer_bytes(1), 4096);
        assert_eq!(ring_buffer_bytes(1024), 1 << 20);
        assert_eq!(ring_buffer_bytes(1000), 1 << 20);
        assert_eq!(ring_buffer_bytes(u32::MAX), 1 << 31);
    }
}
