//! Hand-made recordings: the cases a live run produces rarely or not on demand (ring-buffer
//! drops, address reuse, growth ends without their grow, undecodable records, a `--max-overhead`
//! detach), written record by record with the same [`RecordWriter`] that `--record` uses.
//!
//! Each function returns the bytes of one recording; `tests/replay.rs` checks them against
//! `tests/data/<name>.rec` (rewritten with `UPDATE_GOLDEN=1`), then replays the file.
//!
//! Times: kernel monotonic ns from 10 s; the recorded offset puts 10 s at 2026-01-01 00:00:00
//! UTC, so `00:00:00.000100` in text output is 100 µs after the first event.

use std::collections::HashSet;

use map_trace::{
    golayout::MapImpl,
    output::{StartInfo, StopReason},
    overhead::{Family, FamilyCost, HitCost, Overhead},
    pipeline::{SessionEnd, Settings},
    plan::ProbeSite,
    recording::RecordWriter,
    symbols::{packages, pclntab::SourcePos},
    testkit,
    timeline::Origin,
};
use map_trace_common::event::{
    as_bytes, EvacuateStepEvent, EventHeader, EventKind, MapEvacuatedEvent, MapGrowEvent,
    SliceEvent, Stack, SwissEvent, WireRecord,
};

/// 2026-01-01 00:00:00 UTC.
const EPOCH_2026: u64 = 1_767_225_600_000_000_000;
/// Monotonic ns of the first event.
const MONO0: u64 = 10_000_000_000;
const PID: u32 = 4242;

/// Monotonic ns `us` µs after the first event.
fn at(us: u64) -> u64 {
    MONO0 + us * 1000
}

/// Unix ns `us` µs after the first event.
fn unix(us: u64) -> u64 {
    EPOCH_2026 + us * 1000
}

/// A map type: descriptor address, Go name, key and element sizes, bucket size (classic).
#[derive(Clone, Copy)]
struct Type {
    addr: u64,
    name: Option<&'static str>,
    key: u64,
    elem: u64,
    bucket: u16,
}

const T_INT: Type = Type {
    addr: 0x4b_0100,
    name: Some("map[int]int"),
    key: 8,
    elem: 8,
    bucket: 144,
};
const T_STR: Type = Type {
    addr: 0x4b_0200,
    name: Some("map[string]int"),
    key: 16,
    elem: 8,
    bucket: 208,
};
const T_PTR: Type = Type {
    addr: 0x4b_0300,
    name: Some("map[uint64]*main.entry"),
    key: 8,
    elem: 8,
    bucket: 144,
};
/// A type descriptor the symbolizer could not name.
const T_UNNAMED: Type = Type {
    addr: 0x4b_0400,
    name: None,
    key: 4,
    elem: 4,
    bucket: 80,
};
const S_INT: Type = Type {
    addr: 0x4c_0100,
    name: Some("map[int]int"),
    key: 8,
    elem: 8,
    bucket: 0,
};
const S_STR: Type = Type {
    addr: 0x4c_0200,
    name: Some("map[string][]uint8"),
    key: 16,
    elem: 24,
    bucket: 0,
};
const E_POINT: Type = Type {
    addr: 0x4d_0100,
    name: Some("main.point"),
    key: 0,
    elem: 24,
    bucket: 0,
};
const E_UNNAMED: Type = Type {
    addr: 0x4d_0300,
    name: None,
    key: 0,
    elem: 8,
    bucket: 0,
};

/// Call sites, by the first return address of their stacks.
const PC_FILL: u64 = 0x4a_1010;
const PC_LOAD: u64 = 0x4a_2020;
const PC_CACHE: u64 = 0x4a_3030;
const PC_COLLECT: u64 = 0x4a_4040;
/// Every frame is the runtime's own.
const PC_RUNTIME: u64 = 0x43_9040;
/// Symbolizes to nothing (`origin: null`).
const PC_UNKNOWN: u64 = 0x99_9990;

fn frames(pc: u64) -> Option<Vec<SourcePos>> {
    let f = |function: &str, file: &str, line| SourcePos {
        function: function.into(),
        file: file.into(),
        line,
        inlined: false,
    };
    Some(match pc {
        PC_FILL => vec![
            f("runtime.mapassign_fast64", "runtime/map_fast64.go", 113),
            f("main.fill", "/src/app/main.go", 20),
            f("main.main", "/src/app/main.go", 80),
        ],
        PC_LOAD => vec![
            f("runtime.mapassign_faststr", "runtime/map_faststr.go", 296),
            f("main.load", "/src/app/load.go", 41),
            f("main.main", "/src/app/main.go", 81),
        ],
        PC_CACHE => vec![
            f("runtime.mapassign", "runtime/map.go", 617),
            f("main.(*cache).put", "/src/app/cache.go", 12),
            f("main.worker", "/src/app/main.go", 55),
        ],
        PC_COLLECT => vec![
            f("runtime.growslice", "runtime/slice.go", 267),
            f("main.collect", "/src/app/collect.go", 9),
            f("main.main", "/src/app/main.go", 90),
        ],
        PC_RUNTIME => vec![
            f("runtime.mapassign_fast32", "runtime/map_fast32.go", 94),
            f("runtime.doInit1", "runtime/proc.go", 7291),
            f("runtime.main", "runtime/proc.go", 7258),
        ],
        _ => return None,
    })
}

/// A stack of three frames under `pc`; the words past its depth are junk, as in the ring
/// buffer (symbolization reads only the valid ones).
fn stack(pc: u64) -> Stack {
    let mut s = Stack::default();
    s.pcs[..3].copy_from_slice(&[pc, pc + 0x100, pc + 0x200]);
    s.pcs[3] = 0xdead_beef;
    s.depth = 3;
    s
}

/// One recording being written.
struct Rec {
    w: RecordWriter<Vec<u8>>,
    stacks: HashSet<u64>,
    types: HashSet<u64>,
}

fn probe(program: &'static str, function: &'static str, vaddr: u64, off: u64) -> ProbeSite {
    ProbeSite {
        program,
        function,
        vaddr,
        offset_in_function: off,
        file_offset: vaddr - 0x40_0000,
    }
}

fn classic_probes() -> Vec<ProbeSite> {
    vec![
        probe("hmap_hash_grow", "runtime.hashGrow", 0x40_dc0a, 10),
        probe(
            "hmap_evacuated_0",
            "runtime.advanceEvacuationMark",
            0x40_e4e3,
            163,
        ),
    ]
}

fn start(go_version: &str, map_impl: MapImpl, launched: bool) -> StartInfo {
    StartInfo {
        time_ns: EPOCH_2026 - 2_000_000,
        pid: PID,
        exe: "/srv/app/bin/app".into(),
        go_version: go_version.into(),
        launched,
        build_id: None,
        ..testkit::start_info(map_impl)
    }
}

fn settings() -> Settings {
    Settings {
        pid: PID,
        load_factor_num: 13,
        mono_to_unix_ns: i128::from(EPOCH_2026) - i128::from(MONO0),
        infer_growth_ends: false,
        slices: false,
        min_bytes: 0,
        runtime_maps: false,
        kept: Default::default(),
    }
}

/// What the overhead part of an end line says: one hit cost for every family.
fn overhead(families: &[(Family, u64)], detached: Option<(u64, f64)>) -> Overhead {
    let cost = HitCost {
        body_ns: 1250.0,
        stepped_ns: 9800.5,
        calibrated: true,
    };
    let families: Vec<FamilyCost> = families
        .iter()
        .map(|&(family, hits)| FamilyCost {
            family,
            hits,
            estimated_ns: hits * 1250,
            detached: detached.filter(|_| family == Family::Slices),
        })
        .collect();
    Overhead {
        sampling: None,
        hit_cost: cost,
        estimated_ns: families.iter().map(|f| f.estimated_ns).sum(),
        families,
        target_cpu_ns: Some(40_000_000),
        budget_percent: detached.map(|_| 5.0),
    }
}

fn ending(us: u64, reason: StopReason, exit_status: Option<i32>) -> SessionEnd {
    SessionEnd {
        time_ns: unix(us),
        lost: 0,
        probe_hits: vec![],
        read_errors: 0,
        reason,
        exit_status,
        overhead: overhead(&[(Family::Maps, 0)], None),
    }
}

fn header(kind: EventKind, us: u64, goid: u64) -> EventHeader {
    EventHeader {
        // One thread per goroutine is as good as any: only goids are reported.
        tid: PID + goid as u32,
        ..testkit::records::header(kind, PID, goid, at(us))
    }
}

impl Rec {
    fn new(start: &StartInfo, settings: &Settings) -> Self {
        let mut w = RecordWriter::new(Vec::new());
        w.header(start, settings).unwrap();
        Self {
            w,
            stacks: HashSet::new(),
            types: HashSet::new(),
        }
    }

    /// Writes the symbol lines a live run would write before the first record using them.
    fn symbols(&mut self, pc: u64, t: Type) -> Stack {
        let s = stack(pc);
        if self.stacks.insert(pc) {
            let o = frames(pc).map(|stack| {
                let site = packages::site(&stack, 27);
                Origin { stack, site }
            });
            self.w.stack(&s, o.as_ref()).unwrap();
        }
        if self.types.insert(t.addr) {
            self.w.type_name(t.addr, t.name).unwrap();
        }
        s
    }

    fn raw<T: WireRecord>(&mut self, r: &T) {
        self.w.record(as_bytes(r)).unwrap();
    }

    /// `hashGrow` of map `map` at `b` with `count` entries.
    #[allow(clippy::too_many_arguments)]
    fn grow(&mut self, us: u64, goid: u64, map: u64, t: Type, pc: u64, b: u8, count: u64) {
        let stack = self.symbols(pc, t);
        self.raw(&MapGrowEvent {
            header: header(EventKind::MapGrow, us, goid),
            map,
            maptype: t.addr,
            count,
            key_size: t.key,
            elem_size: t.elem,
            bucket_size: t.bucket,
            b,
            noverflow: u16::from(b),
            stack,
            ..Default::default()
        });
    }

    /// The growth of `map` finished at `b` with `count` entries.
    fn evacuated(&mut self, us: u64, goid: u64, map: u64, b: u8, count: u64) {
        self.raw(&MapEvacuatedEvent {
            header: header(EventKind::MapEvacuated, us, goid),
            map,
            count,
            b,
            ..Default::default()
        });
    }

    /// `--evacuation`: one old bucket moved.
    fn step(&mut self, us: u64, goid: u64, map: u64, old_bucket: u64, duration_ns: u64) {
        self.raw(&EvacuateStepEvent {
            header: header(EventKind::MapEvacuateStep, us, goid),
            map,
            old_bucket,
            duration_ns,
            ..Default::default()
        });
    }

    /// A Swiss resize: `(map_used, table_used)`, `(capacity before, after)`,
    /// `(directory length before, after)`, local depth, duration.
    #[allow(clippy::too_many_arguments)]
    fn swiss(
        &mut self,
        kind: EventKind,
        us: u64,
        goid: u64,
        map: u64,
        t: Type,
        pc: u64,
        used: (u64, u16),
        cap: (u16, u16),
        dir: (u64, u64),
        local_depth: u8,
        duration_ns: u64,
    ) {
        let stack = self.symbols(pc, t);
        self.raw(&SwissEvent {
            header: header(kind, us, goid),
            map,
            maptype: t.addr,
            map_used: used.0,
            key_size: t.key,
            elem_size: t.elem,
            duration_ns,
            dir_len_before: dir.0,
            dir_len_after: dir.1,
            table_used: used.1,
            capacity_before: cap.0,
            capacity_after: cap.1,
            local_depth,
            read_error: 0,
            stack,
        });
    }

    /// A `growslice` call.
    fn slice(&mut self, us: u64, goid: u64, pc: u64, e: Type, caps: (u64, u64), dur: u64) {
        let stack = self.symbols(pc, e);
        self.raw(&SliceEvent {
            header: header(EventKind::SliceGrow, us, goid),
            elem_type: e.addr,
            old_cap: caps.0,
            new_len: caps.0 + 1,
            new_cap: caps.1,
            elem_size: e.elem,
            duration_ns: dur,
            stack,
            ..Default::default()
        });
    }

    fn end(mut self, e: &SessionEnd, undecodable: u64, events: u64) -> Vec<u8> {
        self.w.end(e, undecodable, events).unwrap();
        self.w.into_inner()
    }
}

/// Ring-buffer drops: `lost: 3` in the end line, and records missing from the middle of a map's
/// sequence (the 4 → 8 grow and its end; the end of the 8 → 16 growth).
pub fn drops() -> Vec<u8> {
    let mut s = start("go1.23.9", MapImpl::Classic, true);
    s.probes = classic_probes();
    let mut r = Rec::new(&s, &settings());
    let a = 0xc0_0001_0000;
    r.grow(0, 1, a, T_INT, PC_FILL, 0, 8);
    r.evacuated(40, 1, a, 1, 9);
    r.grow(100, 1, a, T_INT, PC_FILL, 1, 13);
    r.evacuated(150, 1, a, 2, 15);
    // Lost: the grow at B=2 (26 entries) and its end at B=3.
    r.grow(400, 1, a, T_INT, PC_FILL, 3, 52);
    // Lost: the end at B=4.
    r.grow(900, 1, a, T_INT, PC_FILL, 4, 104);
    r.evacuated(1100, 1, a, 5, 120);
    let b = 0xc0_0001_2000;
    r.grow(1200, 1, b, T_STR, PC_LOAD, 0, 8);
    r.evacuated(1250, 1, b, 1, 9);
    let mut e = ending(2000, StopReason::TargetExited, Some(0));
    e.lost = 3;
    e.probe_hits = vec![
        ("runtime.hashGrow".into(), 6),
        ("runtime.advanceEvacuationMark (growth finished)".into(), 6),
    ];
    e.overhead = overhead(&[(Family::Maps, 6), (Family::GrowthEnds, 6)], None);
    r.end(&e, 0, 5)
}

/// Interleaved goroutines on Swiss maps: three maps grown by one goroutine each, records
/// interleaved (one arrives a little out of time order, as from another CPU's ring-buffer
/// slot), a map shared by two goroutines that split its tables, and a new small map at the
/// address of one that died.
pub fn goroutines() -> Vec<u8> {
    let mut s = start("go1.26.6", MapImpl::Swiss, true);
    s.probes = vec![
        probe(
            "swiss_grow_to_table",
            "internal/runtime/maps.(*Map).growToTable",
            0x40_bd0a,
            10,
        ),
        probe(
            "swiss_rehash",
            "internal/runtime/maps.(*table).rehash",
            0x40_e246,
            6,
        ),
    ];
    let settings = Settings {
        load_factor_num: 0,
        ..settings()
    };
    let mut r = Rec::new(&s, &settings);
    use EventKind::{MapSmallToTable as ToTable, MapTableGrow as Grow, MapTableSplit as Split};
    let (m5, m6, m7, shared) = (
        0xc0_0010_0000,
        0xc0_0020_0000,
        0xc0_0030_0000,
        0xc0_0040_0000,
    );
    r.swiss(
        ToTable,
        0,
        5,
        m5,
        S_INT,
        PC_CACHE,
        (8, 0),
        (8, 16),
        (0, 1),
        0,
        3_100,
    );
    r.swiss(
        ToTable,
        7,
        6,
        m6,
        S_INT,
        PC_CACHE,
        (8, 0),
        (8, 16),
        (0, 1),
        0,
        2_900,
    );
    r.swiss(
        ToTable,
        9,
        7,
        m7,
        S_INT,
        PC_CACHE,
        (8, 0),
        (8, 16),
        (0, 1),
        0,
        3_300,
    );
    r.swiss(
        Grow,
        20,
        5,
        m5,
        S_INT,
        PC_CACHE,
        (14, 14),
        (16, 32),
        (1, 1),
        0,
        4_200,
    );
    // Started before the previous record, delivered after it.
    r.swiss(
        Grow,
        18,
        6,
        m6,
        S_INT,
        PC_CACHE,
        (14, 14),
        (16, 32),
        (1, 1),
        0,
        4_000,
    );
    r.swiss(
        ToTable,
        25,
        8,
        shared,
        S_STR,
        PC_LOAD,
        (8, 0),
        (8, 16),
        (0, 1),
        0,
        5_000,
    );
    r.swiss(
        Grow,
        31,
        7,
        m7,
        S_INT,
        PC_CACHE,
        (14, 14),
        (16, 32),
        (1, 1),
        0,
        4_400,
    );
    r.swiss(
        Grow,
        40,
        5,
        m5,
        S_INT,
        PC_CACHE,
        (28, 28),
        (32, 64),
        (1, 1),
        0,
        7_900,
    );
    r.swiss(
        Grow,
        44,
        9,
        shared,
        S_STR,
        PC_LOAD,
        (14, 14),
        (16, 32),
        (1, 1),
        0,
        6_100,
    );
    r.swiss(
        Grow,
        52,
        7,
        m7,
        S_INT,
        PC_CACHE,
        (28, 28),
        (32, 64),
        (1, 1),
        0,
        8_300,
    );
    r.swiss(
        Grow,
        60,
        8,
        shared,
        S_STR,
        PC_LOAD,
        (28, 28),
        (32, 64),
        (1, 1),
        0,
        11_000,
    );
    // The shared map's table reaches 1024 slots and splits, by either goroutine.
    let mut used = 56u64;
    let mut cap = 64u16;
    let mut t = 70;
    for goid in [9, 8, 9, 8] {
        r.swiss(
            Grow,
            t,
            goid,
            shared,
            S_STR,
            PC_LOAD,
            (used, used as u16),
            (cap, cap * 2),
            (1, 1),
            0,
            20_000 + t * 100,
        );
        used *= 2;
        cap *= 2;
        t += 25;
    }
    r.swiss(
        Split,
        180,
        9,
        shared,
        S_STR,
        PC_LOAD,
        (896, 896),
        (1024, 1024),
        (1, 2),
        0,
        310_000,
    );
    r.swiss(
        Split,
        260,
        8,
        shared,
        S_STR,
        PC_LOAD,
        (1344, 896),
        (1024, 1024),
        (2, 4),
        1,
        295_000,
    );
    r.swiss(
        Split,
        330,
        9,
        shared,
        S_STR,
        PC_LOAD,
        (1790, 896),
        (1024, 1024),
        (4, 4),
        1,
        301_500,
    );
    // m7 died; a new map at its address becomes a table on goroutine 11.
    r.swiss(
        ToTable,
        400,
        11,
        m7,
        S_INT,
        PC_CACHE,
        (8, 0),
        (8, 16),
        (0, 1),
        0,
        2_700,
    );
    r.swiss(
        Grow,
        410,
        6,
        m6,
        S_INT,
        PC_CACHE,
        (28, 28),
        (32, 64),
        (1, 1),
        0,
        8_000,
    );
    let mut e = ending(1000, StopReason::TargetExited, Some(0));
    e.probe_hits = vec![
        ("maps.(*Map).growToSmall".into(), 0),
        ("maps.(*Map).growToTable".into(), 5),
        ("maps.(*table).rehash".into(), 15),
        ("return probes".into(), 20),
    ];
    e.overhead = overhead(&[(Family::Maps, 40)], None);
    r.end(&e, 0, 20)
}

/// One address, four maps: a map freed and another made at its address from another call site
/// with another type (already larger than the first), then a smaller one of the same site and
/// type as the second, then one of the same site and size but another type.
pub fn address_reuse() -> Vec<u8> {
    let mut s = start("go1.23.9", MapImpl::Classic, true);
    s.probes = classic_probes();
    let mut r = Rec::new(&s, &settings());
    let a = 0xc0_0002_0000;
    // 1: make(map[int]int) at main.fill: 1 → 8 buckets.
    r.grow(0, 1, a, T_INT, PC_FILL, 0, 8);
    r.evacuated(10, 1, a, 1, 9);
    r.grow(20, 1, a, T_INT, PC_FILL, 1, 13);
    r.evacuated(30, 1, a, 2, 14);
    r.grow(40, 1, a, T_INT, PC_FILL, 2, 26);
    r.evacuated(60, 1, a, 3, 27);
    // 2: make(map[string]int, 50) at main.load, first grown at 8 buckets: another site and
    // type, so another map (its size alone would not tell).
    r.grow(500, 1, a, T_STR, PC_LOAD, 3, 52);
    r.evacuated(530, 1, a, 4, 53);
    r.grow(600, 1, a, T_STR, PC_LOAD, 4, 104);
    r.evacuated(680, 1, a, 5, 105);
    // 3: same site and type as 2, but smaller than 2 ended: a new map.
    r.grow(900, 1, a, T_STR, PC_LOAD, 0, 8);
    r.evacuated(905, 1, a, 1, 9);
    // 4: same site, and 2 buckets as 3 ended, but another type.
    r.grow(1000, 1, a, T_PTR, PC_LOAD, 1, 13);
    r.evacuated(1010, 1, a, 2, 14);
    let mut e = ending(1500, StopReason::TargetExited, Some(0));
    e.probe_hits = vec![
        ("runtime.hashGrow".into(), 7),
        ("runtime.advanceEvacuationMark (growth finished)".into(), 7),
    ];
    e.overhead = overhead(&[(Family::Maps, 7), (Family::GrowthEnds, 7)], None);
    r.end(&e, 0, 7)
}

/// Attached by pid to a running program (`--evacuation`): a growth end (and evacuate steps)
/// of a map whose grow began before tracing, a runtime map whose grow, steps and end are all
/// hidden, a map still growing when tracing stopped (by a signal), and a map whose stack did
/// not symbolize.
pub fn unseen_end() -> Vec<u8> {
    let mut s = start("go1.22.10", MapImpl::Classic, false);
    s.probes = classic_probes();
    s.probes.push(probe(
        "hmap_evacuate",
        "runtime.evacuate_fast64",
        0x40_f00a,
        10,
    ));
    s.probes.push(probe(
        "hmap_evacuate_ret",
        "runtime.evacuate_fast64",
        0x40_f3c1,
        951,
    ));
    let mut r = Rec::new(&s, &settings());
    let (old, rt, m, unknown) = (
        0xc0_0004_0000,
        0xc0_0005_0000,
        0xc0_0006_0000,
        0xc0_0007_0000,
    );
    // A growth that began before tracing: 64 → 128 buckets, old buckets 62 and 63 left.
    r.step(0, 3, old, 62, 900);
    r.grow(5, 1, rt, T_UNNAMED, PC_RUNTIME, 3, 52);
    r.step(6, 1, rt, 0, 400);
    r.step(8, 3, old, 63, 850);
    r.evacuated(9, 3, old, 7, 830);
    r.evacuated(12, 1, rt, 4, 53);
    r.grow(20, 4, m, T_INT, PC_FILL, 2, 26);
    for (i, us) in [(0u64, 21u64), (1, 23), (2, 24), (3, 26)] {
        r.step(us, 4, m, i, 300 + i * 10);
    }
    r.evacuated(26, 4, m, 3, 30);
    r.grow(50, 1, unknown, T_INT, PC_UNKNOWN, 0, 8);
    r.evacuated(52, 1, unknown, 1, 9);
    r.grow(70, 4, m, T_INT, PC_FILL, 3, 52);
    r.step(71, 4, m, 0, 420);
    // SIGINT: m's growth to 16 buckets is still in progress.
    let mut e = ending(300, StopReason::Signal, None);
    e.probe_hits = vec![
        ("runtime.hashGrow".into(), 4),
        ("runtime.advanceEvacuationMark (growth finished)".into(), 4),
        ("runtime.evacuate*".into(), 9),
        ("runtime.evacuate* return probes".into(), 9),
    ];
    e.overhead = overhead(
        &[
            (Family::Maps, 4),
            (Family::GrowthEnds, 4),
            (Family::Evacuation, 18),
        ],
        None,
    );
    r.end(&e, 0, 3)
}

/// Go 1.21 (load factor 6, `load_factor_num` 12) without a finishing probe: growth ends are
/// inferred from each map's next grow; same-size grows; the trace stopped by `--duration`.
pub fn inferred_ends() -> Vec<u8> {
    let mut s = start("go1.21.13", MapImpl::Classic, false);
    s.probes = vec![probe("hmap_hash_grow", "runtime.hashGrow", 0x40_cb0a, 10)];
    let settings = Settings {
        load_factor_num: 12,
        infer_growth_ends: true,
        ..settings()
    };
    let mut r = Rec::new(&s, &settings);
    let (a, b) = (0xc0_0008_0000, 0xc0_0009_0000);
    // Doublings: the insert making count+1 exceed 6 × 2^B.
    r.grow(0, 1, a, T_INT, PC_FILL, 0, 8);
    r.grow(30, 1, a, T_INT, PC_FILL, 1, 12);
    r.grow(80, 1, a, T_INT, PC_FILL, 2, 24);
    // Same-size grows (too many overflow buckets), 8 buckets with 20 and 30 entries.
    r.grow(100, 3, b, T_PTR, PC_CACHE, 3, 20);
    r.grow(170, 1, a, T_INT, PC_FILL, 3, 48);
    r.grow(300, 3, b, T_PTR, PC_CACHE, 3, 30);
    let mut e = ending(5000, StopReason::Duration, None);
    e.probe_hits = vec![("runtime.hashGrow".into(), 6)];
    e.overhead = overhead(&[(Family::Maps, 6)], None);
    r.end(&e, 0, 6)
}

/// Records that do not decode (an unknown kind, a short header, a short payload), records of
/// another process and an exec record (both ignored), a partial grow, slices below and above
/// `--min-bytes 1024`, and `--max-overhead 5` detaching `--slices` midway.
pub fn undecodable() -> Vec<u8> {
    let mut s = start("go1.23.9", MapImpl::Classic, true);
    s.probes = classic_probes();
    s.probes
        .push(probe("slice_grow", "runtime.growslice", 0x46_770a, 10));
    s.probes.push(probe(
        "slice_grow_ret",
        "runtime.growslice",
        0x46_7f21,
        2071,
    ));
    let settings = Settings {
        slices: true,
        min_bytes: 1024,
        ..settings()
    };
    let mut r = Rec::new(&s, &settings);
    let a = 0xc0_000a_0000;
    r.grow(0, 1, a, T_INT, PC_FILL, 0, 8);
    // An unknown kind, full size.
    let mut unknown = MapGrowEvent {
        header: header(EventKind::MapGrow, 5, 1),
        ..Default::default()
    };
    unknown.header.kind = 99;
    r.raw(&unknown);
    // Shorter than a header, and a map_grow record cut short.
    let full = MapGrowEvent {
        header: header(EventKind::MapGrow, 6, 1),
        map: a,
        ..Default::default()
    };
    r.w.record(&as_bytes(&full)[..20]).unwrap();
    r.w.record(&as_bytes(&full)[..60]).unwrap();
    // Another process (a probe shared with it would deliver these): ignored.
    let mut other = MapGrowEvent {
        header: header(EventKind::MapGrow, 7, 1),
        map: 0xc0_000b_0000,
        maptype: T_INT.addr,
        count: 8,
        bucket_size: 144,
        ..Default::default()
    };
    other.header.pid = PID + 1;
    r.raw(&other);
    // An exec record (only the agent attaches that tracepoint): ignored.
    r.raw(&header(EventKind::Exec, 8, 0));
    r.evacuated(10, 1, a, 1, 9);
    // A grow whose map could not be read: zero fields are unknown.
    let stack = r.symbols(PC_FILL, T_INT);
    r.raw(&MapGrowEvent {
        header: header(EventKind::MapGrow, 20, 1),
        map: 0xc0_000c_0000,
        read_error: 1,
        stack,
        ..Default::default()
    });
    // Slices of 24-byte points: 192, 384 and 768 bytes are below --min-bytes.
    let mut us = 30;
    for caps in [(0, 8), (8, 16), (16, 32), (32, 64), (64, 128)] {
        r.slice(us, 1, PC_COLLECT, E_POINT, caps, 2_000 + caps.1 * 10);
        us += 10;
    }
    // From the runtime's own frames (slices are not hidden), and of an unnamed element type.
    r.slice(90, 1, PC_RUNTIME, E_POINT, (0, 86), 3_500);
    r.slice(95, 1, PC_COLLECT, E_UNNAMED, (256, 512), 6_000);
    let detach_us = 100;
    r.w.detached(&map_trace::overhead::Detached {
        sampled_duty: None,
        time_ns: unix(detach_us),
        family: Family::Slices,
        share_percent: 7.5,
        budget_percent: 5.0,
        hits: 14,
    })
    .unwrap();
    r.grow(200, 1, a, T_INT, PC_FILL, 1, 13);
    r.evacuated(230, 1, a, 2, 14);
    let mut e = ending(400, StopReason::TargetExited, Some(3));
    e.read_errors = 1;
    e.probe_hits = vec![
        ("runtime.hashGrow".into(), 3),
        ("runtime.advanceEvacuationMark (growth finished)".into(), 2),
        ("runtime.growslice".into(), 7),
        ("runtime.growslice return probes".into(), 7),
    ];
    e.overhead = overhead(
        &[
            (Family::Maps, 3),
            (Family::GrowthEnds, 2),
            (Family::Slices, 14),
        ],
        Some((unix(detach_us), 7.5)),
    );
    r.end(&e, 3, 3)
}
