//! Reading a running process's memory without stopping it: `process_vm_readv(2)`.
//!
//! The only `unsafe` of the heap reader is here: one system call on buffers this module owns.

use std::io;

/// Why a read of target memory failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The kernel refused (EPERM: no CAP_SYS_PTRACE over the target, Yama's ptrace_scope).
    #[error(
        "reading the target's memory was refused (EPERM): map-trace needs ptrace access to it"
    )]
    Refused,
    /// The process is gone (ESRCH).
    #[error("the process exited")]
    Gone,
    /// The address is not mapped in the target (EFAULT), or only part of it was.
    #[error("address {0:#x} is not mapped in the target")]
    Unmapped(u64),
}

/// Something that reads target memory: the live process, or a test's fake heap.
pub trait Memory {
    /// Fills `buf` from `addr`; all or nothing.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError>;

    /// A little-endian u64 at `addr`.
    fn u64(&self, addr: u64) -> Result<u64, ReadError> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// The memory of process `pid`, read with `process_vm_readv`: the target is never stopped, and
/// a read of a page it unmapped fails instead of faulting.
pub struct ProcessMemory {
    pid: libc::pid_t,
    /// Reads done, for the cost figures in the bench and the summary.
    reads: std::cell::Cell<u64>,
}

impl ProcessMemory {
    /// The memory of `pid`.
    pub fn new(pid: u32) -> Self {
        Self {
            pid: pid as libc::pid_t,
            reads: std::cell::Cell::new(0),
        }
    }

    /// `process_vm_readv` calls made so far.
    pub fn reads(&self) -> u64 {
        self.reads.get()
    }
}

impl Memory for ProcessMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        if buf.is_empty() {
            return Ok(());
        }
        self.reads.set(self.reads.get() + 1);
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as usize as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: `local` describes `buf`, which is exclusively borrowed and `buf.len()` bytes
        // long; the kernel writes at most that many bytes into it. `remote` is only an address
        // in the other process, which the kernel checks (EFAULT), never dereferenced here.
        let n = unsafe { libc::process_vm_readv(self.pid, &local, 1, &remote, 1, 0) };
        if n == buf.len() as isize {
            return Ok(());
        }
        if n >= 0 {
            return Err(ReadError::Unmapped(addr));
        }
        Err(match io::Error::last_os_error().raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => ReadError::Refused,
            Some(libc::ESRCH) => ReadError::Gone,
            _ => ReadError::Unmapped(addr),
        })
    }
}

/// A fake address space for tests: sparse 4 KiB pages, zero-filled when first written.
#[cfg(any(test, feature = "testkit"))]
#[derive(Default)]
pub struct FakeMemory {
    pages: std::collections::HashMap<u64, Box<[u8; 4096]>>,
}

#[cfg(any(test, feature = "testkit"))]
impl FakeMemory {
    /// Puts `bytes` at `addr`, mapping the pages it touches.
    pub fn put(&mut self, addr: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            let a = addr + i as u64;
            self.pages
                .entry(a / 4096)
                .or_insert_with(|| Box::new([0; 4096]))[(a % 4096) as usize] = *b;
        }
    }

    /// Puts a little-endian u64 at `addr`.
    pub fn put_u64(&mut self, addr: u64, v: u64) {
        self.put(addr, &v.to_le_bytes());
    }

    /// Maps `len` zero bytes at `addr` (keeping what was written there).
    pub fn zeroed(&mut self, addr: u64, len: usize) {
        let last = (addr + len.max(1) as u64 - 1) / 4096;
        for p in addr / 4096..=last {
            self.pages.entry(p).or_insert_with(|| Box::new([0; 4096]));
        }
    }
}

#[cfg(any(test, feature = "testkit"))]
impl Memory for FakeMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        for (i, b) in buf.iter_mut().enumerate() {
            let a = addr + i as u64;
            let page = self
                .pages
                .get(&(a / 4096))
                .ok_or(ReadError::Unmapped(addr))?;
            *b = page[(a % 4096) as usize];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_process_memory_reads_our_own_memory_and_reports_unmapped() {
        let value: u64 = 0x1122_3344_5566_7788;
        let mem = ProcessMemory::new(std::process::id());
        assert_eq!(mem.u64(&value as *const u64 as u64), Ok(value));
        assert_eq!(mem.u64(8), Err(ReadError::Unmapped(8)));
        assert_eq!(mem.reads(), 2);
    }

    #[test]
    fn test_fake_memory_regions() {
        let mut m = FakeMemory::default();
        m.zeroed(0x1000, 64);
        m.put_u64(0x1008, 7);
        assert_eq!(m.u64(0x1008), Ok(7));
        assert_eq!(m.u64(0x1000), Ok(0));
        assert!(m.u64(0x2000).is_err());
        assert!(m.u64(0xffc).is_err());
    }
}
