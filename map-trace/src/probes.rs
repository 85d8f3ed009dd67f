//! The only module that touches `aya::programs`: load the embedded object, hand it the layout,
//! attach and (on drop) detach the uprobes.

use std::{num::NonZeroU32, path::Path};

use anyhow::{Context, Result};
use aya::{
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::{
        uprobe::{UProbeAttachLocation, UProbeScope},
        UProbe,
    },
    Ebpf, EbpfLoader,
};
use map_trace_common::{
    config::{Counter, MapLayout},
    names,
};

use crate::{error::Fail, plan::ProbeSite};

/// The eBPF object `cargo xtask build` compiled for this architecture (empty in builds made
/// without xtask).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/map-trace.bpf.o"));

/// Loaded programs and maps. Dropping it detaches every probe.
pub struct Probes {
    ebpf: Ebpf,
}

/// Ring-buffer size in bytes: a power of two, at least one page.
pub fn ring_buffer_bytes(kib: u32) -> u32 {
    let page = 4096u32;
    let want = kib.saturating_mul(1024).max(page);
    want.checked_next_power_of_two().unwrap_or(1 << 31)
}

fn kernel_error(what: &str, err: impl std::error::Error + Send + Sync + 'static) -> anyhow::Error {
    let text = format!("{:#}", anyhow::Error::new(err));
    if text.contains("No such process") {
        Fail::bad_target(format!("{what}: the process exited")).into()
    } else if text.contains("Operation not permitted") || text.contains("Permission denied") {
        Fail::privileges(format!(
            "{what}: {text} (need CAP_BPF and CAP_PERFMON, or root)"
        ))
        .into()
    } else {
        Fail::unsupported(format!("{what}: the kernel refused: {text}")).into()
    }
}

impl Probes {
    /// Loads the object with a ring buffer of `ring_bytes`.
    pub fn load(ring_bytes: u32) -> Result<Self> {
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
        let ebpf = EbpfLoader::new()
            .map_max_entries(names::EVENTS_MAP, ring_bytes)
            .override_global("WAKEUP_BYTES", &wakeup_bytes, true)
            .load(OBJECT)
            .map_err(|e| kernel_error("loading the eBPF object", e))?;
        Ok(Self { ebpf })
    }

    /// Registers `layout` for process `pid`.
    pub fn set_layout(&mut self, pid: u32, layout: MapLayout) -> Result<()> {
        let map = self
            .ebpf
            .map_mut(names::LAYOUTS_MAP)
            .context("LAYOUTS map missing")?;
        let mut layouts: HashMap<_, u32, MapLayout> = HashMap::try_from(map)?;
        layouts
            .insert(pid, layout, 0)
            .context("writing the layout map")?;
        Ok(())
    }

    /// Attaches one probe to `exe` for process `pid` only.
    pub fn attach(&mut self, site: &ProbeSite, exe: &Path, pid: u32) -> Result<()> {
        let prog: &mut UProbe = self
            .ebpf
            .program_mut(site.program)
            .with_context(|| format!("program {} missing from the eBPF object", site.program))?
            .try_into()?;
        if prog.fd().is_err() {
            prog.load()
                .map_err(|e| kernel_error("loading a uprobe program", e))?;
        }
        let pid = NonZeroU32::new(pid).context("pid 0")?;
        prog.attach(
            UProbeAttachLocation::AbsoluteOffset(site.file_offset),
            exe,
            UProbeScope::OneProcess(pid),
        )
        .map_err(|e| {
            kernel_error(
                &format!(
                    "attaching a uprobe to {} at {} (file offset {:#x})",
                    exe.display(),
                    site.function,
                    site.file_offset
                ),
                e,
            )
        })?;
        Ok(())
    }

    /// Takes the ring buffer for the reader.
    pub fn take_ring_buffer(&mut self) -> Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map(names::EVENTS_MAP)
            .context("EVENTS map missing")?;
        Ok(RingBuf::try_from(map)?)
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
    fn test_ring_buffer_bytes_power_of_two() {
        assert_eq!(ring_buffer_bytes(0), 4096);
        assert_eq!(ring_buffer_bytes(1), 4096);
        assert_eq!(ring_buffer_bytes(1024), 1 << 20);
        assert_eq!(ring_buffer_bytes(1000), 1 << 20);
        assert_eq!(ring_buffer_bytes(u32::MAX), 1 << 31);
    }
}
