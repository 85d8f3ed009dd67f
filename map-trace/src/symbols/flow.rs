//! The control flow of one function, as far as probe placement needs it: its basic blocks, which
//! of its instructions the kernel emulates when probed, and which registers each one may write.
//!
//! A uprobe on an instruction the kernel can emulate costs one trap (~0.6–1 µs on a VM, ~0.3 µs
//! on bare metal); any other instruction is single-stepped out of line, a second trap (~11–14 µs
//! on a VM, ~1–2 µs on bare metal). What the kernel emulates (read from its source):
//! - x86-64 (`arch/x86/kernel/uprobes.c`, `branch_setup_xol_ops`): `JMP rel8/rel32`, `Jcc
//!   rel8/rel32`, `CALL rel32` and the one-byte `NOP` (0x90), without an operand-size prefix,
//!   since Linux 3.16. Newer kernels add `PUSH reg` and the multi-byte NOPs; they are not relied
//!   on.
//! - arm64 (`arch/arm64/kernel/probes/decode-insn.c`, `arm_probe_decode_insn`): `B`, `BL`,
//!   `B.cond`, `CBZ`/`CBNZ`, `TBZ`/`TBNZ`, `BR`/`BLR`/`RET` and `ADR`/`ADRP` are simulated
//!   since uprobes came to arm64 (4.10). Everything else is stepped.
//!
//! Calls are not treated as block ends: a call returns to the next instruction.

use iced_x86::{Decoder, DecoderOptions, FlowControl, InstructionInfoFactory, OpAccess, Register};

use super::elf::Arch;

/// amd64 registers in the eBPF side's `go_abi::reg` order (`map_trace_common::names::X86_64_REGS`,
/// checked by a test); a write to any other register is not
/// tracked (it cannot hold a value map-trace reads).
pub const X86_REGS: [Register; 13] = [
    Register::RAX,
    Register::RBX,
    Register::RCX,
    Register::RDI,
    Register::RSI,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
    Register::RDX,
    Register::R12,
    Register::R13,
    Register::R15,
];

/// Where control goes after an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// The next instruction (calls included).
    Next,
    /// Only the target (an offset in the function), or out of the function (`None`).
    Jump(Option<u64>),
    /// The target or the next instruction.
    Branch(Option<u64>),
    /// Leaves the function (return, trap).
    Exit,
    /// An indirect jump: the successors are unknown.
    Unknown,
}

/// One decoded instruction.
#[derive(Clone, Copy, Debug)]
pub struct Insn {
    /// Offset from the function start.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Where control goes next.
    pub flow: Flow,
    /// The kernel emulates it when probed (no single-step).
    pub emulated: bool,
    /// Registers it may write (bit `i` = `go_abi::reg` index `i`), conservatively: when in
    /// doubt, a register counts as written.
    pub writes: u32,
}

/// A function's instructions and basic blocks.
pub struct Cfg {
    /// Every instruction, in address order.
    pub insns: Vec<Insn>,
    /// Each block's instruction index range.
    blocks: Vec<std::ops::Range<usize>>,
    succs: Vec<Vec<usize>>,
    preds: Vec<Vec<usize>>,
    exits: Vec<bool>,
}

/// Decodes `code` (the whole function at `addr`); `None` when its control flow cannot be known
/// (an indirect jump) or it is too large to analyse.
pub fn decode(arch: Arch, code: &[u8], addr: u64) -> Option<Cfg> {
    let insns = match arch {
        Arch::X86_64 => decode_x86(code, addr),
        Arch::Aarch64 => decode_arm64(code),
    };
    Cfg::build(insns)
}

fn decode_x86(code: &[u8], addr: u64) -> Vec<Insn> {
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut info = InstructionInfoFactory::new();
    let mut out = vec![];
    while decoder.can_decode() {
        let insn = decoder.decode();
        let offset = insn.ip() - addr;
        let len = insn.len() as u64;
        let flow = x86_flow(&insn, addr, code.len() as u64);
        let bytes = &code[offset as usize..(offset + len) as usize];
        let emulated = match bytes {
            [0x90] | [0xeb, _] | [0xe9, ..] | [0x70..=0x7f, _] => true,
            [0x0f, 0x80..=0x8f, ..] => len == 6,
            _ => false,
        };
        let mut writes = 0u32;
        for r in info.info(&insn).used_registers() {
            if matches!(
                r.access(),
                OpAccess::Write
                    | OpAccess::CondWrite
                    | OpAccess::ReadWrite
                    | OpAccess::ReadCondWrite
            ) {
                let full = r.register().full_register();
                if let Some(i) = X86_REGS.iter().position(|x| *x == full) {
                    writes |= 1 << i;
                }
            }
        }
        out.push(Insn {
            offset,
            len,
            flow,
            emulated,
            writes,
        });
    }
    out
}

/// Where control goes after the amd64 instruction `insn` of a function of `size` bytes at
/// `addr`.
pub(crate) fn x86_flow(insn: &iced_x86::Instruction, addr: u64, size: u64) -> Flow {
    let inside = |t: u64| t.checked_sub(addr).filter(|o| *o < size);
    if insn.is_invalid() {
        return Flow::Exit;
    }
    match insn.flow_control() {
        FlowControl::Next | FlowControl::Call | FlowControl::IndirectCall => Flow::Next,
        FlowControl::UnconditionalBranch => Flow::Jump(inside(insn.near_branch_target())),
        FlowControl::ConditionalBranch => Flow::Branch(inside(insn.near_branch_target())),
        FlowControl::Return | FlowControl::Interrupt | FlowControl::Exception => Flow::Exit,
        FlowControl::IndirectBranch | FlowControl::XbeginXabortXend => Flow::Unknown,
    }
}

/// The arm64 branch (or trap) `w` at `offset` in a function of `size` bytes, and where
/// control goes after it: `B`, `BL`, `B.cond`, `CBZ`/`CBNZ`, `TBZ`/`TBNZ`, `RET`, `BR`, `BLR`,
/// `UDF` and `BRK`; `None` for any other instruction. Calls (`BL`, `BLR`) are
/// [`Flow::Next`]; of the others, none writes a general register.
pub(crate) fn arm64_branch(w: u32, offset: u64, size: u64) -> Option<Flow> {
    let rel = |words: i64| {
        let t = offset as i64 + words * 4;
        (t >= 0 && (t as u64) < size).then_some(t as u64)
    };
    Some(if w & 0xFC00_0000 == 0x1400_0000 {
        Flow::Jump(rel(sext(w & 0x03FF_FFFF, 26))) // B
    } else if w & 0xFC00_0000 == 0x9400_0000 || w & 0xFFFF_FC1F == 0xD63F_0000 {
        Flow::Next // BL, BLR
    } else if w & 0xFF00_0010 == 0x5400_0000 || w & 0x7E00_0000 == 0x3400_0000 {
        Flow::Branch(rel(sext((w >> 5) & 0x7FFFF, 19))) // B.cond, CBZ/CBNZ
    } else if w & 0x7E00_0000 == 0x3600_0000 {
        Flow::Branch(rel(sext((w >> 5) & 0x3FFF, 14))) // TBZ/TBNZ
    } else if w & 0xFFFF_FC1F == 0xD65F_0000 || w == 0 || w & 0xFFE0_001F == 0xD420_0000 {
        Flow::Exit // RET, UDF, BRK
    } else if w & 0xFFFF_FC1F == 0xD61F_0000 {
        Flow::Unknown // BR
    } else {
        return None;
    })
}

/// `BL` and `BLR`.
pub(crate) fn arm64_is_call(w: u32) -> bool {
    w & 0xFC00_0000 == 0x9400_0000 || w & 0xFFFF_FC1F == 0xD63F_0000
}

/// `v`'s low `bits` bits, sign-extended.
pub(crate) fn sext(v: u32, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((u64::from(v) << shift) as i64) >> shift
}

fn decode_arm64(code: &[u8]) -> Vec<Insn> {
    let size = code.len() as u64;
    code.chunks_exact(4)
        .enumerate()
        .map(|(i, b)| {
            let w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let offset = i as u64 * 4;
            let rt = w & 31;
            let trap = w == 0 || w & 0xFFE0_001F == 0xD420_0000; // UDF, BRK
            let (flow, emulated, writes) = match arm64_branch(w, offset, size) {
                // Calls write the link register.
                Some(f) if arm64_is_call(w) => (f, true, 1 << 30),
                Some(f) => (f, !trap, 0),
                None if w & 0x1F00_0000 == 0x1000_0000 => (Flow::Next, true, 1 << rt), // ADR/ADRP
                None => (Flow::Next, false, arm64_writes(w)),
            };
            Insn {
                offset,
                len: 4,
                flow,
                emulated,
                writes: writes & 0x7FFF_FFFF,
            }
        })
        .collect()
}

/// General registers an arm64 non-branch instruction may write, erring towards "written": the
/// destination field of every data-processing instruction and load, the second register of a
/// load pair, the base of a pre- or post-indexed access, the status register of an exclusive
/// store. Only plain stores are known to write nothing.
pub(crate) fn arm64_writes(w: u32) -> u32 {
    let rt = w & 31;
    let rn = (w >> 5) & 31;
    let rt2 = (w >> 10) & 31;
    let rs = (w >> 16) & 31;
    let bit = |r: u32| if r < 31 { 1u32 << r } else { 0 };
    // Loads and stores: op0 = x1x0.
    if (w >> 25) & 0b101 != 0b100 {
        return bit(rt);
    }
    match (w >> 27) & 0b111 {
        // Pair: L is bit 22; bits 24:23 are 01 (post-index) or 11 (pre-index) with write-back.
        0b101 => {
            let wb = matches!((w >> 23) & 0b11, 0b01 | 0b11);
            let load = (w >> 22) & 1 == 1;
            (if load { bit(rt) | bit(rt2) } else { 0 }) | (if wb { bit(rn) } else { 0 })
        }
        // One register: opc (bits 23:22) 00 is a store.
        0b111 => {
            let store = (w >> 22) & 0b11 == 0;
            let unsigned_offset = (w >> 24) & 1 == 1;
            let wb = !unsigned_offset && (w >> 21) & 1 == 0 && (w >> 10) & 0b01 == 1;
            let atomic = !unsigned_offset && (w >> 21) & 1 == 1 && (w >> 10) & 0b11 == 0;
            (if store && !atomic { 0 } else { bit(rt) }) | (if wb { bit(rn) } else { 0 })
        }
        // Exclusives, literal loads and the rest: everything they name may be written.
        _ => bit(rt) | bit(rt2) | bit(rs),
    }
}

impl Cfg {
    fn build(insns: Vec<Insn>) -> Option<Self> {
        if insns.is_empty() || insns.len() > 20_000 {
            return None;
        }
        if insns.iter().any(|i| i.flow == Flow::Unknown) {
            return None;
        }
        let index_of = |off: u64| insns.binary_search_by_key(&off, |i| i.offset).ok();
        // Leaders: the entry, every in-function target, every instruction after a block end.
        let mut leader = vec![false; insns.len()];
        leader[0] = true;
        for (n, i) in insns.iter().enumerate() {
            let target = match i.flow {
                Flow::Jump(t) | Flow::Branch(t) => t,
                _ => None,
            };
            if let Some(t) = target {
                // A branch into the middle of an instruction: not code this can reason about.
                leader[index_of(t)?] = true;
            }
            if i.flow != Flow::Next && n + 1 < insns.len() {
                leader[n + 1] = true;
            }
        }
        let mut blocks = vec![];
        let mut start = 0;
        for (n, &lead) in leader.iter().enumerate().skip(1) {
            if lead {
                blocks.push(start..n);
                start = n;
            }
        }
        blocks.push(start..insns.len());
        let block_of = |insn: usize| blocks.partition_point(|b| b.end <= insn);
        let mut succs = vec![vec![]; blocks.len()];
        let mut exits = vec![false; blocks.len()];
        for (b, r) in blocks.iter().enumerate() {
            let last = insns[r.end - 1];
            let next = (r.end < insns.len()).then(|| block_of(r.end));
            let mut add = |t: Option<u64>| match t.and_then(index_of) {
                Some(i) => succs[b].push(block_of(i)),
                None => exits[b] = true,
            };
            match last.flow {
                Flow::Next => match next {
                    Some(n) => succs[b].push(n),
                    None => exits[b] = true,
                },
                Flow::Jump(t) => add(t),
                Flow::Branch(t) => {
                    add(t);
                    match next {
                        Some(n) => succs[b].push(n),
                        None => exits[b] = true,
                    }
                }
                Flow::Exit | Flow::Unknown => exits[b] = true,
            }
        }
        let mut preds = vec![vec![]; blocks.len()];
        for (b, s) in succs.iter().enumerate() {
            for &t in s {
                preds[t].push(b);
            }
        }
        Some(Self {
            insns,
            blocks,
            succs,
            preds,
            exits,
        })
    }

    /// The index of the instruction at `offset`.
    pub fn insn_at(&self, offset: u64) -> Option<usize> {
        self.insns.binary_search_by_key(&offset, |i| i.offset).ok()
    }

    fn block_of(&self, insn: usize) -> usize {
        self.blocks.partition_point(|b| b.end <= insn)
    }

    /// Dominator sets by the iterative data-flow method, over `preds` from `root`.
    fn dominators(n: usize, root: usize, preds: &[Vec<usize>]) -> Vec<Vec<bool>> {
        let mut dom = vec![vec![true; n]; n];
        dom[root] = vec![false; n];
        dom[root][root] = true;
        let mut changed = true;
        while changed {
            changed = false;
            for b in (0..n).filter(|b| *b != root) {
                let mut new = vec![true; n];
                let mut any = false;
                for &p in &preds[b] {
                    any = true;
                    for (x, d) in new.iter_mut().zip(&dom[p]) {
                        *x &= *d;
                    }
                }
                if !any {
                    new = vec![false; n];
                }
                new[b] = true;
                if new != dom[b] {
                    dom[b] = new;
                    changed = true;
                }
            }
        }
        dom
    }

    fn reach(&self, from: usize, forward: bool) -> Vec<bool> {
        let mut seen = vec![false; self.blocks.len()];
        let mut stack = vec![from];
        while let Some(b) = stack.pop() {
            if std::mem::replace(&mut seen[b], true) {
                continue;
            }
            stack.extend(if forward {
                &self.succs[b]
            } else {
                &self.preds[b]
            });
        }
        seen
    }

    /// Whether block `b` lies on a cycle.
    fn in_cycle(&self, b: usize) -> bool {
        self.succs[b]
            .iter()
            .any(|&s| s == b || self.reach(s, true)[b])
    }

    /// Instructions that run exactly as often as the one at index `at` and where `reg` (a bit
    /// index of [`Insn::writes`]) still holds the value it has when `at` runs: each lies in a
    /// block that dominates `at`'s block and is post-dominated by it (so one runs if and only
    /// if the other does), neither block is on a cycle (so each runs at most once per call),
    /// and no instruction on any path between them may write `reg`. In address order; `at`'s
    /// own block is included, up to `at`.
    pub fn equivalent_before(&self, at: usize, reg: u32) -> Vec<usize> {
        let n = self.blocks.len();
        let target = self.block_of(at);
        if self.in_cycle(target) {
            return vec![];
        }
        // Both graphs get node `n`, a virtual exit: in the reverse graph it precedes every
        // exiting block (a block's predecessors there are its successors).
        let mut preds = self.preds.clone();
        preds.push(vec![]);
        let mut rpreds = self.succs.clone();
        for (b, r) in rpreds.iter_mut().enumerate() {
            if self.exits[b] {
                r.push(n);
            }
        }
        rpreds.push(vec![]);
        let dom = Self::dominators(n + 1, 0, &preds);
        let pdom = Self::dominators(n + 1, n, &rpreds);
        let to_target = self.reach(target, false);
        let mask = 1u32 << reg;
        let mut out = vec![];
        for b in 0..n {
            if !(dom[target][b] && pdom[b][target]) || (b != target && self.in_cycle(b)) {
                continue;
            }
            // Every instruction on a path from the end of `b` to `at`: the blocks reachable
            // from `b` that reach the target, and the target's own instructions before `at`.
            let from_b = self.reach(b, true);
            let between_blocks = (0..n)
                .filter(|&x| x != b && x != target && from_b[x] && to_target[x])
                .flat_map(|x| self.blocks[x].clone());
            let target_head = self.blocks[target].start..at;
            let clobbered = between_blocks
                .chain(if b == target { 0..0 } else { target_head })
                .any(|i| self.insns[i].writes & mask != 0);
            if clobbered {
                continue;
            }
            // Within `b`: an instruction qualifies when nothing after it in `b` (before `at`)
            // writes the register.
            let r = self.blocks[b].clone();
            let end = if b == target { at } else { r.end };
            let mut ok_from = end;
            for i in (r.start..end).rev() {
                if self.insns[i].writes & mask != 0 {
                    break;
                }
                ok_from = i;
            }
            out.extend(ok_from..end);
        }
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decoder's registers are the eBPF programs' (`hmap_evacuated_N` reads register N of
    /// `go_abi::reg`), as `map_trace_common::names` lists them once for both sides.
    #[test]
    fn test_x86_regs_match_the_shared_register_table() {
        let ours: Vec<String> = X86_REGS
            .iter()
            .map(|r| format!("{r:?}").to_lowercase())
            .collect();
        assert_eq!(ours, map_trace_common::names::X86_64_REGS);
        assert_eq!(map_trace_common::names::evac_regs("x86_64"), X86_REGS.len());
    }
}
