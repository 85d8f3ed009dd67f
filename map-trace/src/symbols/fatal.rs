//! Where the map is when a map function calls `runtime.fatal`.
//!
//! The runtime kills a process that misuses a map from inside the map function that saw it
//! (`runtime.mapassign_fast64`, `internal/runtime/maps.(*Iter).Next`, …): `fatal("concurrent map
//! writes")`. `fatal` is given only the message, and Go keeps nothing in callee-saved
//! registers, so the map is wherever that function's code happened to leave it at its `CALL`:
//! in a register the message's setup did not overwrite, in the argument slot the function
//! spilled it to, or (for an iteration) in the iterator the function was given. The eBPF
//! probe sends the registers and the top of the stack at `fatal`'s entry; this module decodes
//! the calling function, per binary and never from a table of offsets, to say which of them
//! holds the map (and its type), if any does.
//!
//! The decoder is a forward data-flow pass over the function's instructions: which registers
//! and stack slots hold "the value register R had at entry" (an argument) or "the word at
//! offset D of it" (a field of an argument), kept where every path to an instruction agrees.
//! Calls clobber every register (Go's ABI saves none) and the function's locals; the stack
//! pointer's offset at each instruction comes from the function's own `pcsp` table. Swiss
//! builds call `fatal` through `internal/runtime/maps.fatal`, probed at its entry (before its
//! stack check, whose trip through `morestack` would overwrite the registers); a record taken
//! inside `fatal` under that wrapper (recordings of earlier releases) is decoded through it
//! (which registers it leaves alone, how large its frame is).

use std::collections::BTreeMap;

use iced_x86::{
    Decoder, DecoderOptions, FlowControl, InstructionInfoFactory, Mnemonic, OpAccess, OpKind,
    Register,
};
use map_trace_common::event::{MapFatalEvent, FATAL_REGS};

use super::{
    elf::{Arch, Function},
    flow::{self, Flow, X86_REGS},
};

/// Largest function decoded (the map functions are 0.2–4 KB).
const MAX_FUNCTION: u64 = 64 * 1024;

/// The Swiss maps' linknamed wrapper of `runtime.fatal`.
pub const MAPS_FATAL: &str = "internal/runtime/maps.fatal";

/// What a value is, in terms of the function's entry state. Registers are numbered as the
/// eBPF side's `go_abi::reg` on amd64 (whose first nine are Go's argument registers RAX, RBX,
/// RCX, RDI, RSI, R8–R11, in order) and as Rn on arm64 (arguments in R0–R15): either way
/// `In(i)` for i < 9 is the i-th integer argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sym {
    /// The value register `n` (the eBPF `go_abi::reg` numbering on amd64, Rn on arm64) had at
    /// entry.
    In(u8),
    /// The 8-byte word at offset `.1` of what register `.0` held at entry.
    Field(u8, i64),
}

/// Where a value is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Loc {
    Reg(u8),
    /// A stack slot, by its offset from the stack pointer at the function's entry (the
    /// incoming arguments' spill slots are at 8, 16, … on both architectures).
    Slot(i64),
}

type State = BTreeMap<Loc, Sym>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Base {
    Sp,
    Reg(u8),
    Other,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// `dst = src`.
    Copy { dst: u8, src: u8 },
    /// `dst = [base + disp]` (8 bytes).
    Load { dst: u8, base: Base, disp: i64 },
    /// `[base + disp] = src` (`size` bytes; `src` only for a whole register).
    Store {
        src: Option<u8>,
        base: Base,
        disp: i64,
        size: i64,
    },
    /// A call: every register is clobbered.
    Call,
    /// Registers written (a bit each), and whether some stack slot may be written too.
    Clobber { regs: u64, any_slot: bool },
}

struct Insn {
    offset: u64,
    len: u64,
    flow: Flow,
    ops: Vec<Op>,
}

/// Registers the eBPF record carries: amd64 the 13 of `X86_REGS`, arm64 R0–R26.
fn captured(arch: Arch, r: u8) -> bool {
    match arch {
        Arch::X86_64 => (r as usize) < X86_REGS.len(),
        Arch::Aarch64 => (r as usize) < FATAL_REGS,
    }
}

fn x86_reg(r: Register) -> Option<u8> {
    let full = r.full_register();
    X86_REGS.iter().position(|x| *x == full).map(|i| i as u8)
}

fn x86_base(insn: &iced_x86::Instruction) -> Base {
    if insn.memory_index() != Register::None {
        return Base::Other;
    }
    match insn.memory_base() {
        Register::RSP => Base::Sp,
        r => x86_reg(r).map_or(Base::Other, Base::Reg),
    }
}

fn decode_x86(code: &[u8], addr: u64) -> Vec<Insn> {
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut info = InstructionInfoFactory::new();
    let mut out = vec![];
    while decoder.can_decode() {
        let insn = decoder.decode();
        let offset = insn.ip() - addr;
        let flow = flow::x86_flow(&insn, addr, code.len() as u64);
        let reg64 = |i: u32| {
            (insn.op_kind(i) == OpKind::Register && insn.op_register(i).size() == 8)
                .then(|| x86_reg(insn.op_register(i)))
        };
        let mem8 = insn.memory_size().size() == 8;
        let op = match (insn.mnemonic(), insn.op_count()) {
            _ if matches!(
                insn.flow_control(),
                FlowControl::Call | FlowControl::IndirectCall
            ) =>
            {
                Some(Op::Call)
            }
            (Mnemonic::Mov, 2) => match (insn.op0_kind(), insn.op1_kind()) {
                (OpKind::Register, OpKind::Register) => match (reg64(0), reg64(1)) {
                    (Some(Some(dst)), Some(Some(src))) => Some(Op::Copy { dst, src }),
                    _ => None,
                },
                (OpKind::Register, OpKind::Memory) if mem8 => match reg64(0) {
                    Some(Some(dst)) => Some(Op::Load {
                        dst,
                        base: x86_base(&insn),
                        disp: insn.memory_displacement64() as i64,
                    }),
                    _ => None,
                },
                (OpKind::Memory, _) => Some(Op::Store {
                    src: reg64(1).flatten(),
                    base: x86_base(&insn),
                    disp: insn.memory_displacement64() as i64,
                    size: insn.memory_size().size() as i64,
                }),
                _ => None,
            },
            _ => None,
        };
        let ops = match op {
            Some(op) => vec![op],
            None => {
                let used = info.info(&insn);
                let mut regs = 0u64;
                for r in used.used_registers() {
                    if matches!(
                        r.access(),
                        OpAccess::Write
                            | OpAccess::CondWrite
                            | OpAccess::ReadWrite
                            | OpAccess::ReadCondWrite
                    ) {
                        if let Some(i) = x86_reg(r.register()) {
                            regs |= 1 << i;
                        }
                    }
                }
                let mut ops = vec![];
                let mut any_slot = false;
                for m in used.used_memory() {
                    if !matches!(
                        m.access(),
                        OpAccess::Write
                            | OpAccess::CondWrite
                            | OpAccess::ReadWrite
                            | OpAccess::ReadCondWrite
                    ) {
                        continue;
                    }
                    match (m.base(), m.index()) {
                        (Register::RSP, Register::None) => ops.push(Op::Store {
                            src: None,
                            base: Base::Sp,
                            disp: m.displacement() as i64,
                            size: (m.memory_size().size() as i64).max(1),
                        }),
                        // A write through another register is assumed not to reach the
                        // function's own argument slots (Go never takes their address in
                        // the map functions); a string instruction may.
                        (Register::RDI, _) | (Register::None, _) => any_slot = true,
                        _ => {}
                    }
                }
                ops.push(Op::Clobber { regs, any_slot });
                ops
            }
        };
        out.push(Insn {
            offset,
            len: insn.len() as u64,
            flow,
            ops,
        });
    }
    out
}

fn decode_arm64(code: &[u8]) -> Vec<Insn> {
    let size = code.len() as u64;
    code.chunks_exact(4)
        .enumerate()
        .map(|(i, b)| {
            let w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let offset = i as u64 * 4;
            let (flow, ops) = match flow::arm64_branch(w, offset, size) {
                Some(f) if flow::arm64_is_call(w) => (f, vec![Op::Call]),
                // The other branches write no register (`flow::arm64_writes` is for the
                // other instructions, and reads a branch's register field as a destination).
                Some(f) => (f, vec![]),
                None => (Flow::Next, ops_arm64(w)),
            };
            Insn {
                offset,
                len: 4,
                flow,
                ops,
            }
        })
        .collect()
}

/// What a non-branch arm64 instruction does to registers and stack slots.
fn ops_arm64(w: u32) -> Vec<Op> {
    let rt = (w & 31) as u8;
    let rn = ((w >> 5) & 31) as u8;
    let rt2 = ((w >> 10) & 31) as u8;
    let base = if rn == 31 { Base::Sp } else { Base::Reg(rn) };
    let src = |r: u8| (r != 31).then_some(r);
    // MOV Xd, Xm (ORR Xd, XZR, Xm).
    if w & 0xFFE0_FFE0 == 0xAA00_03E0 && rt != 31 {
        return vec![Op::Copy {
            dst: rt,
            src: ((w >> 16) & 31) as u8,
        }];
    }
    // LDR/STR (unsigned immediate), any size: size = bits 31:30, opc = bits 23:22.
    if w & 0x3B00_0000 == 0x3900_0000 {
        let sz = 1i64 << (w >> 30);
        let disp = i64::from((w >> 10) & 0xFFF) * sz;
        return ldst(w, rt, base, disp, sz, src);
    }
    // LDUR/STUR (unscaled, imm9).
    if w & 0x3B20_0C00 == 0x3800_0000 {
        let sz = 1i64 << (w >> 30);
        let disp = flow::sext((w >> 12) & 0x1FF, 9);
        return ldst(w, rt, base, disp, sz, src);
    }
    // LDP/STP of X registers: signed offset (010), pre-index (011), post-index (001).
    if w & 0xFE00_0000 == 0xA800_0000 && (w >> 26) & 1 == 0 {
        let mode = (w >> 23) & 0b11;
        let load = (w >> 22) & 1 == 1;
        let imm = flow::sext((w >> 15) & 0x7F, 7) * 8;
        let disp = if mode == 0b01 { 0 } else { imm };
        let mut ops = if load {
            match base {
                Base::Sp | Base::Reg(_) if mode == 0b10 => vec![
                    Op::Load {
                        dst: rt,
                        base,
                        disp,
                    },
                    Op::Load {
                        dst: rt2,
                        base,
                        disp: disp + 8,
                    },
                ],
                _ => vec![Op::Clobber {
                    regs: (1 << rt) | (1 << rt2),
                    any_slot: false,
                }],
            }
        } else {
            vec![
                Op::Store {
                    src: src(rt),
                    base,
                    disp,
                    size: 8,
                },
                Op::Store {
                    src: src(rt2),
                    base,
                    disp: disp + 8,
                    size: 8,
                },
            ]
        };
        if mode != 0b10 && rn != 31 {
            ops.push(Op::Clobber {
                regs: 1 << rn,
                any_slot: false,
            });
        }
        return ops;
    }
    // Any other load or store: a store through SP may write any slot.
    let mem = (w >> 25) & 0b101 == 0b100;
    let regs = u64::from(flow::arm64_writes(w));
    vec![Op::Clobber {
        regs,
        any_slot: mem && rn == 31 && !is_load(w),
    }]
}

/// Loads among the other load/store encodings (bit 22 is L in most classes).
fn is_load(w: u32) -> bool {
    (w >> 22) & 1 == 1
}

fn ldst(
    w: u32,
    rt: u8,
    base: Base,
    disp: i64,
    size: i64,
    src: impl Fn(u8) -> Option<u8>,
) -> Vec<Op> {
    let vector = (w >> 26) & 1 == 1;
    let opc = (w >> 22) & 0b11;
    // Pre/post-index forms of the unscaled class write the base back.
    let writeback = w & 0x3B00_0000 == 0x3800_0000 && (w >> 10) & 0b11 != 0;
    let mut ops = match (opc, vector) {
        (0, _) => vec![Op::Store {
            src: if size == 8 && !vector { src(rt) } else { None },
            base,
            disp: if writeback && (w >> 10) & 0b11 == 0b01 {
                0
            } else {
                disp
            },
            size: if vector { 16 } else { size },
        }],
        (1, false) if size == 8 && !writeback => vec![Op::Load {
            dst: rt,
            base,
            disp,
        }],
        (_, true) => vec![],
        _ => vec![Op::Clobber {
            regs: 1 << rt,
            any_slot: false,
        }],
    };
    if writeback {
        if let Base::Reg(r) = base {
            ops.push(Op::Clobber {
                regs: 1 << r,
                any_slot: false,
            });
        }
    }
    ops
}

/// Runs `ops` over `state`; `sp` is the stack pointer's distance below its entry value there.
fn transfer(state: &mut State, ops: &[Op], sp: i64) {
    for op in ops {
        match *op {
            Op::Copy { dst, src } => match state.get(&Loc::Reg(src)).copied() {
                Some(v) => {
                    state.insert(Loc::Reg(dst), v);
                }
                None => {
                    state.remove(&Loc::Reg(dst));
                }
            },
            Op::Load { dst, base, disp } => {
                let v = match base {
                    Base::Sp => state.get(&Loc::Slot(disp - sp)).copied(),
                    Base::Reg(b) => match state.get(&Loc::Reg(b)) {
                        Some(Sym::In(r)) => Some(Sym::Field(*r, disp)),
                        _ => None,
                    },
                    Base::Other => None,
                };
                match v {
                    Some(v) => state.insert(Loc::Reg(dst), v),
                    None => state.remove(&Loc::Reg(dst)),
                };
            }
            Op::Store {
                src,
                base,
                disp,
                size,
            } => {
                if base != Base::Sp {
                    continue;
                }
                let at = disp - sp;
                state.retain(|l, _| !matches!(l, Loc::Slot(s) if *s < at + size && s + 8 > at));
                if let (Some(v), 8) = (src.and_then(|r| state.get(&Loc::Reg(r)).copied()), size) {
                    state.insert(Loc::Slot(at), v);
                }
            }
            Op::Call => {
                // Every register, and the locals (a callee may write those it was handed);
                // the incoming arguments' slots are the function's own.
                state.retain(|l, _| matches!(l, Loc::Slot(s) if *s > 0));
            }
            Op::Clobber { regs, any_slot } => {
                state.retain(|l, _| match l {
                    Loc::Reg(r) => regs & (1 << r) == 0,
                    Loc::Slot(_) => !any_slot,
                });
            }
        }
    }
}

/// What holds each value at the instruction at `at` (an offset in the function), on every
/// path from the entry; `None` when the code cannot be analysed. `sp_delta` gives the stack
/// pointer's distance below its entry value at an offset.
fn state_at(
    arch: Arch,
    code: &[u8],
    addr: u64,
    at: u64,
    init: State,
    sp_delta: &mut dyn FnMut(u64) -> Option<u64>,
) -> Option<State> {
    if code.len() as u64 > MAX_FUNCTION {
        return None;
    }
    let insns = match arch {
        Arch::X86_64 => decode_x86(code, addr),
        Arch::Aarch64 => decode_arm64(code),
    };
    if insns.iter().any(|i| i.flow == Flow::Unknown) {
        return None;
    }
    let index: rustc_hash::FxHashMap<u64, usize> = insns
        .iter()
        .enumerate()
        .map(|(i, n)| (n.offset, i))
        .collect();
    let target = *index.get(&at)?;
    let sps: Vec<i64> = insns
        .iter()
        .map(|n| sp_delta(n.offset).map_or(i64::MIN, |d| d as i64))
        .collect();
    let mut states: Vec<Option<State>> = vec![None; insns.len()];
    states[0] = Some(init);
    let mut work = vec![0usize];
    while let Some(i) = work.pop() {
        let mut s = states[i].clone().expect("queued instructions have a state");
        if sps[i] == i64::MIN {
            // No pcsp entry: stack slots cannot be named here.
            s.retain(|l, _| matches!(l, Loc::Reg(_)));
        } else {
            transfer(&mut s, &insns[i].ops, sps[i]);
        }
        let next = index.get(&(insns[i].offset + insns[i].len)).copied();
        let succs: [Option<usize>; 2] = match insns[i].flow {
            Flow::Next => [next, None],
            Flow::Jump(t) => [t.and_then(|t| index.get(&t).copied()), None],
            Flow::Branch(t) => [next, t.and_then(|t| index.get(&t).copied())],
            Flow::Exit | Flow::Unknown => [None, None],
        };
        for j in succs.into_iter().flatten() {
            // The stack-growth path jumps back to the entry with the arguments reloaded:
            // the entry state stays the one the caller made.
            if j == 0 {
                continue;
            }
            let changed = match &mut states[j] {
                None => {
                    states[j] = Some(s.clone());
                    true
                }
                Some(old) => {
                    let before = old.len();
                    old.retain(|l, v| s.get(l) == Some(v));
                    old.len() != before
                }
            };
            if changed {
                work.push(j);
            }
        }
    }
    states.swap_remove(target)
}

/// Which of a map function's values is the map and which its type, by the function's name.
fn wanted(function: &str) -> Option<(Sym, Sym)> {
    // Iterators: `hiter` (runtime) and `maps.Iter` both begin key, elem, type, map.
    const ITER_TYPE: i64 = 16;
    const ITER_MAP: i64 = 24;
    if function == "runtime.mapiternext" || function == "internal/runtime/maps.(*Iter).Next" {
        return Some((Sym::Field(0, ITER_MAP), Sym::Field(0, ITER_TYPE)));
    }
    // Methods of the Swiss map: the receiver, then the type.
    if function.starts_with("internal/runtime/maps.(*Map).") {
        return Some((Sym::In(0), Sym::In(1)));
    }
    // runtime.mapaccess1(t, h, key) and every other map function: the type, then the map.
    if function.starts_with("runtime.map") {
        return Some((Sym::In(1), Sym::In(0)));
    }
    None
}

/// How the map was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// It was still in a register at the call.
    Register(&'static str),
    /// In the stack slot the function spilled its argument to.
    Stack,
    /// In the iterator the function was given, on the goroutine's stack.
    Iterator,
}

impl Found {
    /// A few words for outputs.
    pub fn describe(&self) -> String {
        match self {
            Found::Register(r) => format!("register {r}"),
            Found::Stack => "the function's stack frame".into(),
            Found::Iterator => "the iterator on the goroutine's stack".into(),
        }
    }
}

/// The map (and its type) of a fatal error, or why it was not found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The map function that called `fatal`.
    pub function: Option<String>,
    /// The map header's address and where it was.
    pub map: Result<(u64, Found), String>,
    /// The map type descriptor's address.
    pub maptype: Option<u64>,
}

/// What the decoder needs of the executable.
pub trait Code {
    /// The function containing process address `pc`: its name, and its process address and
    /// size.
    fn function_at(&mut self, pc: u64) -> Option<(String, Function)>;
    /// Its bytes.
    fn bytes(&mut self, f: Function) -> Option<Vec<u8>>;
    /// The stack pointer's distance below its entry value at process address `pc`.
    fn sp_delta(&mut self, pc: u64) -> Option<u64>;
}

fn reg_name(arch: Arch, r: u8) -> &'static str {
    const ARM: [&str; 27] = [
        "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13",
        "x14", "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26",
    ];
    match arch {
        Arch::X86_64 => map_trace_common::names::X86_64_REGS
            .get(r as usize)
            .copied()
            .unwrap_or("?"),
        Arch::Aarch64 => ARM.get(r as usize).copied().unwrap_or("?"),
    }
}

/// The caller of the probed `fatal` (`pc`, a return address) and the state at its call.
struct Frame {
    function: String,
    state: State,
    /// Stack pointer at the function's entry (process address).
    entry_sp: u64,
}

/// Decodes the function that returns to `ret` and its state at the call before `ret`.
fn frame(arch: Arch, code: &mut dyn Code, ret: u64, sp_at_call: u64) -> Result<Frame, String> {
    let (name, f) = code
        .function_at(ret.wrapping_sub(1))
        .ok_or_else(|| format!("no function at {ret:#x}"))?;
    // Map functions are a few KB; anything much larger is not one.
    if f.size > MAX_FUNCTION {
        return Err(format!("{name} is too large to decode"));
    }
    let bytes = code
        .bytes(f)
        .ok_or_else(|| format!("{name}'s code could not be read"))?;
    let call = call_before(arch, &bytes, f.addr, ret - f.addr)
        .ok_or_else(|| format!("no call instruction before {ret:#x} in {name}"))?;
    let sp_call = code
        .sp_delta(f.addr + call)
        .ok_or_else(|| format!("{name} has no frame size at its call"))?;
    let state = state_at_call(arch, code, f, &bytes, call)
        .ok_or_else(|| format!("{name}'s control flow could not be decoded"))?;
    Ok(Frame {
        function: name,
        state,
        entry_sp: sp_at_call.wrapping_add(sp_call),
    })
}

/// The state at the call at offset `call` of `f` (whose code is `bytes`), from the entry.
fn state_at_call(
    arch: Arch,
    code: &mut dyn Code,
    f: Function,
    bytes: &[u8],
    call: u64,
) -> Option<State> {
    state_at(arch, bytes, f.addr, call, entry_state(arch), &mut |o| {
        code.sp_delta(f.addr + o)
    })
}

/// Which registers still hold their entry value in `state`: at a wrapper's call of `fatal`,
/// the registers it passes through untouched.
fn untouched(state: &State) -> Vec<bool> {
    (0..FATAL_REGS as u8)
        .map(|r| state.get(&Loc::Reg(r)) == Some(&Sym::In(r)))
        .collect()
}

/// Where `want` is kept, best first: the registers `live` at `fatal`'s entry, then stack
/// slots (a `State` orders registers before slots).
fn places(state: &State, want: Sym, live: &dyn Fn(u8) -> bool) -> Vec<Loc> {
    state
        .iter()
        .filter(|(loc, sym)| {
            **sym == want
                && match loc {
                    Loc::Reg(r) => live(*r),
                    Loc::Slot(_) => true,
                }
        })
        .map(|(loc, _)| *loc)
        .collect()
}

/// The offset of the call instruction that ends at `ret_off`.
fn call_before(arch: Arch, code: &[u8], addr: u64, ret_off: u64) -> Option<u64> {
    match arch {
        Arch::Aarch64 => ret_off.checked_sub(4),
        Arch::X86_64 => {
            let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
            while decoder.can_decode() {
                let insn = decoder.decode();
                if insn.next_ip() - addr == ret_off {
                    return matches!(
                        insn.flow_control(),
                        FlowControl::Call | FlowControl::IndirectCall
                    )
                    .then(|| insn.ip() - addr);
                }
                if insn.next_ip() - addr > ret_off {
                    return None;
                }
            }
            None
        }
    }
}

fn entry_state(arch: Arch) -> State {
    let n = match arch {
        Arch::X86_64 => X86_REGS.len(),
        Arch::Aarch64 => 31,
    };
    (0..n as u8).map(|r| (Loc::Reg(r), Sym::In(r))).collect()
}

/// Finds the map of a fatal error: decodes the function that called `fatal` (through the
/// Swiss wrapper when there is one) and reads the map where it left it.
pub fn locate(arch: Arch, code: &mut dyn Code, ev: &MapFatalEvent) -> Located {
    let frames = ev.stack.frames();
    let not = |function: Option<String>, why: String| Located {
        function,
        map: Err(why),
        maptype: None,
    };
    let Some(&first) = frames.first() else {
        return not(None, "the stack was not read".into());
    };
    // Where the caller's stack pointer was at its call: amd64's CALL pushed the return address.
    let pushed = match arch {
        Arch::X86_64 => 8,
        Arch::Aarch64 => 0,
    };
    let mut sp_at_call = ev.sp.wrapping_add(pushed);
    let mut ret = first;
    // Registers still holding what they held at the map function's call.
    let mut live: Vec<bool> = (0..FATAL_REGS as u8).map(|r| captured(arch, r)).collect();
    let first_name = code.function_at(first.wrapping_sub(1)).map(|(n, _)| n);
    if first_name.as_deref() == Some(MAPS_FATAL) {
        let w = match frame(arch, code, first, sp_at_call) {
            Ok(w) => w,
            Err(why) => return not(Some(MAPS_FATAL.into()), why),
        };
        for (l, kept) in live.iter_mut().zip(untouched(&w.state)) {
            *l &= kept;
        }
        sp_at_call = w.entry_sp.wrapping_add(pushed);
        let Some(&next) = frames.get(1) else {
            return not(
                Some(MAPS_FATAL.into()),
                "the stack ends at the wrapper".into(),
            );
        };
        ret = next;
    }
    let f = match frame(arch, code, ret, sp_at_call) {
        Ok(f) => f,
        Err(why) => return not(first_name, why),
    };
    let Some((want_map, want_type)) = wanted(&f.function) else {
        return not(
            Some(f.function.clone()),
            format!("{} is not a map function map-trace knows", f.function),
        );
    };
    let window = &ev.window[..(ev.window_len as usize).min(ev.window.len())];
    let word_at = |addr: u64| -> Option<u64> {
        let off = usize::try_from(addr.checked_sub(ev.sp)?).ok()?;
        let b = window.get(off..off.checked_add(8)?)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    };
    let live = |r: u8| live.get(r as usize).copied().unwrap_or(false);
    let read = |loc: Loc| -> Option<(u64, Found)> {
        match loc {
            Loc::Reg(r) => Some((ev.regs[r as usize], Found::Register(reg_name(arch, r)))),
            Loc::Slot(s) => word_at(f.entry_sp.wrapping_add_signed(s)).map(|v| (v, Found::Stack)),
        }
    };
    // A map (or type) pointer at these calls is never nil, so a place reading 0 is not it
    // (a register the decoder found holding it on another path to the call): the next one is
    // tried.
    let value = |want: Sym| -> Option<(u64, Found)> {
        let nonzero = |loc| read(loc).filter(|(v, _)| *v != 0);
        if let Some(v) = places(&f.state, want, &live).into_iter().find_map(nonzero) {
            return Some(v);
        }
        // A field of an argument: the argument itself (the iterator's address) and the
        // iterator in the stack window.
        let Sym::Field(r, off) = want else {
            return None;
        };
        places(&f.state, Sym::In(r), &live)
            .into_iter()
            .filter_map(nonzero)
            .find_map(|(base, _)| word_at(base.wrapping_add_signed(off)).filter(|v| *v != 0))
            .map(|v| (v, Found::Iterator))
    };
    let map = value(want_map).ok_or_else(|| {
        format!(
            "{} no longer holds the map at its call of fatal",
            f.function
        )
    });
    let maptype = value(want_type).map(|(v, _)| v).filter(|v| *v != 0);
    Located {
        function: Some(f.function),
        map,
        maptype,
    }
}

/// Where one call of `fatal` in a map function leaves the map and its type: the shapes the
/// decoder meets in a binary, found without a crash (for tests and for people).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteShape {
    /// The map function.
    pub function: String,
    /// The call's offset in it.
    pub call: u64,
    /// Where the map is at the call (`register rcx`, `argument slot 1`, …), or `None`.
    pub map: Option<String>,
    /// Where its type is.
    pub maptype: Option<String>,
}

fn place(arch: Arch, state: &State, want: Sym, live: &dyn Fn(u8) -> bool) -> Option<String> {
    let direct = |want: Sym| -> Option<String> {
        places(state, want, live).first().map(|loc| match *loc {
            Loc::Reg(r) => format!("register {}", reg_name(arch, r)),
            Loc::Slot(s) if s >= 8 && (s - 8) % 8 == 0 => format!("argument slot {}", (s - 8) / 8),
            Loc::Slot(s) => format!("stack slot {s:+}"),
        })
    };
    direct(want).or_else(|| match want {
        Sym::Field(r, off) => direct(Sym::In(r)).map(|p| format!("{p}, then +{off}")),
        Sym::In(_) => None,
    })
}

/// Every call of `runtime.fatal` (at `fatal`) or of the Swiss wrapper (`wrapper`) in the
/// map functions among `functions`, and where each leaves the map. Both are probed at their
/// entry (the wrapper before its stack check), so every register the probe sends is as the map
/// function left it.
pub fn survey(
    arch: Arch,
    code: &mut dyn Code,
    functions: &[(String, Function)],
    fatal: u64,
    wrapper: Option<Function>,
) -> Vec<SiteShape> {
    let targets: Vec<u64> = std::iter::once(fatal)
        .chain(wrapper.map(|w| w.addr))
        .collect();
    let live = |r: u8| captured(arch, r);
    let mut out = vec![];
    for (name, f) in functions {
        let Some((want_map, want_type)) = wanted(name) else {
            continue;
        };
        if f.size > MAX_FUNCTION {
            continue;
        }
        let Some(bytes) = code.bytes(*f) else {
            continue;
        };
        for (call, _) in calls_to(arch, &bytes, f.addr, &targets) {
            let st = state_at_call(arch, code, *f, &bytes, call);
            out.push(SiteShape {
                function: name.clone(),
                call,
                map: st.as_ref().and_then(|s| place(arch, s, want_map, &live)),
                maptype: st.as_ref().and_then(|s| place(arch, s, want_type, &live)),
            });
        }
    }
    out
}

/// The direct calls to any of `targets` in `code` (at `addr`): their offsets and targets.
fn calls_to(arch: Arch, code: &[u8], addr: u64, targets: &[u64]) -> Vec<(u64, u64)> {
    let mut out = vec![];
    match arch {
        Arch::X86_64 => {
            let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
            while decoder.can_decode() {
                let insn = decoder.decode();
                let target = insn.near_branch_target();
                if insn.flow_control() == FlowControl::Call && targets.contains(&target) {
                    out.push((insn.ip() - addr, target));
                }
            }
        }
        Arch::Aarch64 => {
            for (i, b) in code.chunks_exact(4).enumerate() {
                let w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                let off = i as u64 * 4;
                // BL: a direct call.
                if w & 0xFC00_0000 != 0x9400_0000 {
                    continue;
                }
                let target = (addr + off).wrapping_add_signed(flow::sext(w & 0x03FF_FFFF, 26) * 4);
                if targets.contains(&target) {
                    out.push((off, target));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One function's code, at `addr`, with a stack-pointer table.
    struct Fake {
        name: &'static str,
        addr: u64,
        code: Vec<u8>,
        sp: fn(u64) -> u64,
    }

    impl Code for Fake {
        fn function_at(&mut self, pc: u64) -> Option<(String, Function)> {
            (pc >= self.addr && pc < self.addr + self.code.len() as u64).then(|| {
                (
                    self.name.to_string(),
                    Function {
                        addr: self.addr,
                        size: self.code.len() as u64,
                    },
                )
            })
        }
        fn bytes(&mut self, _f: Function) -> Option<Vec<u8>> {
            Some(self.code.clone())
        }
        fn sp_delta(&mut self, pc: u64) -> Option<u64> {
            Some((self.sp)(pc - self.addr))
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// `runtime.mapassign_fast64` of Go 1.23.9 (amd64) up to its first `CALL runtime.fatal`,
    /// as `go tool objdump` shows it: `h` arrives in BX, is spilled to its argument slot
    /// (`MOVQ BX, 0x48(SP)`), then BX is overwritten by the message's length.
    const MAPASSIGN_FAST64_123: &str = "493b6610 0f86e0020000 55 4889e5 4883ec30 48894c2450
        660f1f840000000000 4885db 0f84ad020000 4889442440 48895c2448 0fb64b08 f6c104 741b
        488d0567170a00 bb15000000 e893c2fcff";

    fn mapassign_sp(off: u64) -> u64 {
        match off {
            0..=10 => 0,
            11..=17 => 8,
            _ => 0x38,
        }
    }

    fn event(ret: u64, sp: u64, words: &[(usize, u64)]) -> MapFatalEvent {
        let mut ev = MapFatalEvent {
            sp,
            window_len: 256,
            ..Default::default()
        };
        ev.stack.pcs[0] = ret;
        ev.stack.depth = 1;
        for &(at, v) in words {
            ev.window[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        ev
    }

    #[test]
    fn test_map_found_in_the_spilled_argument_slot() {
        let code = hex(MAPASSIGN_FAST64_123);
        let addr = 0x4678e0;
        let ret = addr + code.len() as u64;
        let mut f = Fake {
            name: "runtime.mapassign_fast64",
            addr,
            code,
            sp: mapassign_sp,
        };
        // At fatal's entry: the return address at sp; the caller's frame (0x38 bytes) above
        // it, then the return address into the program, then the argument slots t, h, key.
        let sp = 0xc000100000;
        let ev = event(ret, sp, &[(0, ret), (0x48, 0x4ad460), (0x50, 0xc0000944b0)]);
        let l = locate(Arch::X86_64, &mut f, &ev);
        assert_eq!(l.function.as_deref(), Some("runtime.mapassign_fast64"));
        assert_eq!(l.map, Ok((0xc0000944b0, Found::Stack)));
        assert_eq!(l.maptype, Some(0x4ad460));
    }

    #[test]
    fn test_no_map_when_nothing_holds_it_at_the_call() {
        // The same function without the spill of h: BX was overwritten, nothing holds h.
        let code = hex(&MAPASSIGN_FAST64_123.replace("48895c2448", "0f1f440000"));
        let addr = 0x4678e0;
        let ret = addr + code.len() as u64;
        let mut f = Fake {
            name: "runtime.mapassign_fast64",
            addr,
            code,
            sp: mapassign_sp,
        };
        let ev = event(ret, 0xc000100000, &[(0x50, 0xc0000944b0)]);
        let l = locate(Arch::X86_64, &mut f, &ev);
        assert!(l.map.is_err(), "{l:?}");
        // The type's slot (t was spilled) holds nothing in this window.
        assert_eq!(l.maptype, None);
    }

    /// `internal/runtime/maps.(*Iter).Next` of Go 1.27.3 (amd64) to its `if it.m.writing != 0`
    /// test (`it.m` loaded into DX), then a fatal block: DX survives the message's setup.
    #[test]
    fn test_iterator_map_found_in_a_register() {
        let code = hex(
            "493b6610 0f8655060000 55 4889e5 4883ec40 488b5018 4885d2 7470
            807a2200 90 7501 cc 488d05f8140a00 bb26000000 e824c0fcff",
        );
        let addr = 0x406300;
        let ret = addr + code.len() as u64;
        let mut f = Fake {
            name: "internal/runtime/maps.(*Iter).Next",
            addr,
            code,
            sp: |off| match off {
                0..=10 => 0,
                11..=17 => 8,
                _ => 0x48,
            },
        };
        let mut ev = event(ret, 0xc000100000, &[]);
        // RDX is register 9 of the eBPF list.
        ev.regs[9] = 0xc000012340;
        ev.regs[0] = 0x4ddd00; // RAX: the message now
        let l = locate(Arch::X86_64, &mut f, &ev);
        assert_eq!(l.map, Ok((0xc000012340, Found::Register("rdx"))));
        // The iterator itself (RAX at entry) is gone: no type.
        assert_eq!(l.maptype, None);
    }

    #[test]
    fn test_unknown_function_is_said() {
        let mut f = Fake {
            name: "main.notAMapFunction",
            addr: 0x1000,
            code: hex("55 4889e5 e800000000"),
            sp: |_| 8,
        };
        let ev = event(0x1009, 0xc000100000, &[]);
        let l = locate(Arch::X86_64, &mut f, &ev);
        assert!(l.map.unwrap_err().contains("not a map function"));
    }

    /// arm64: `h` (R1) stored to its slot by `MOVD R1, 0x40(RSP)` after a 0x30-byte frame
    /// (`STR X1, [SP, #0x40]`), then R1 reused for the message's length.
    #[test]
    fn test_arm64_spill_slot() {
        // MOVD.W R30, -0x30(RSP): STR X30, [SP, #-0x30]!   fe0f1df8
        // STR X0, [SP, #0x38]                              e01f00f9
        // CBZ X1, +400 (out of the function: the nil-map panic) 810c00b4
        // STR X1, [SP, #0x40]                              e12300f9
        // ADRP X0, …                                       00000090
        // MOVZ X1, #21                                     a10280d2
        // BL fatal                                         00000094
        // With the nil-map test (CBZ) between the spills: a branch writes no register.
        let code = hex("fe0f1df8 e01f00f9 810c00b4 e12300f9 00000090 a10280d2 00000094");
        let addr = 0x10000;
        let ret = addr + code.len() as u64;
        let mut f = Fake {
            name: "runtime.mapassign_fast64",
            addr,
            code,
            sp: |off| if off == 0 { 0 } else { 0x30 },
        };
        // arm64: fatal's sp is the caller's; its entry sp is 0x30 above; h at entry + 16.
        let sp = 0xc000200000;
        let ev = event(ret, sp, &[(0x38, 0x777000), (0x40, 0xc000055550)]);
        let l = locate(Arch::Aarch64, &mut f, &ev);
        assert_eq!(l.map, Ok((0xc000055550, Found::Stack)));
        assert_eq!(l.maptype, Some(0x777000));
    }
}
