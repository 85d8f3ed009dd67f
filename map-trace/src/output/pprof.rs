//! `--pprof FILE`: the map events as a pprof profile (gzipped `profile.proto`), for
//! `go tool pprof` and continuous profilers.
//!
//! Every map event is a sample at its logical stack, with four values in this order:
//! `resizes/count` (the default: 1 per grow or Swiss resize), `bytes/bytes` (what it
//! allocated, as in the JSON), `resize_time/nanoseconds` (a Swiss resize's synchronous time)
//! and `growth_span/nanoseconds` (a hash-bucket map's growth, grow → last bucket moved: a
//! sample of its own, kind `growth_end`, at the grow's stack), and the labels `map_type` and
//! `kind` (`double`, `same_size`, `small_to_table`, `table_grow`, `table_split`,
//! `small_alloc`, `growth_end`). Samples of one stack and labels are summed. A location is one
//! return address: its lines are the functions inlined there, innermost first, then the
//! function that made the call. The one mapping names the executable and its Go build ID.
//!
//! [`Profile`] builds the message; [`PprofSink`] feeds it from a run and writes it at the end;
//! the agent builds one per request from its window.

use std::{
    io::{self, Write},
    path::PathBuf,
    sync::Arc,
};

use rustc_hash::FxHashMap;

use super::{EndInfo, Sink, StartInfo};
use crate::timeline::{Evacuated, Grow, Origin, SliceGrow, SwissKind, SwissResize};

/// The `profile.proto` messages map-trace writes (github.com/google/pprof, proto/profile.proto).
pub mod proto {
    /// A profile.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub mapping: Vec<Mapping>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub period: i64,
        #[prost(int64, tag = "14")]
        pub default_sample_type: i64,
    }

    /// A sample type and unit (string table indexes).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    /// One stack's values.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    /// A string label.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        #[prost(int64, tag = "2")]
        pub str: i64,
    }

    /// The executable.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Mapping {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "5")]
        pub filename: i64,
        #[prost(int64, tag = "6")]
        pub build_id: i64,
        #[prost(bool, tag = "7")]
        pub has_functions: bool,
        #[prost(bool, tag = "8")]
        pub has_filenames: bool,
        #[prost(bool, tag = "9")]
        pub has_line_numbers: bool,
        #[prost(bool, tag = "10")]
        pub has_inline_frames: bool,
    }

    /// A return address, as its lines.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub mapping_id: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
    }

    /// A function at a line.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        #[prost(int64, tag = "2")]
        pub line: i64,
    }

    /// A function.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        #[prost(int64, tag = "4")]
        pub filename: i64,
    }
}

/// The sample types, in order.
pub const SAMPLE_TYPES: [(&str, &str); 4] = [
    ("resizes", "count"),
    ("bytes", "bytes"),
    ("resize_time", "nanoseconds"),
    ("growth_span", "nanoseconds"),
];

/// One event's values, in [`SAMPLE_TYPES`] order, and its labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleOf {
    pub values: [i64; 4],
    pub map_type: Arc<str>,
    pub kind: &'static str,
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn type_of(t: &Option<Arc<str>>) -> Arc<str> {
    t.clone().unwrap_or_else(|| Arc::from("unknown"))
}

impl SampleOf {
    /// A hash-bucket grow.
    pub fn grow(g: &Grow) -> Self {
        Self {
            values: [1, int(g.bytes_allocated), 0, 0],
            map_type: type_of(&g.type_name),
            kind: g.label(),
        }
    }

    /// A Swiss resize.
    pub fn swiss(r: &SwissResize) -> Self {
        Self {
            values: [
                1,
                int(r.bytes_allocated()),
                int(r.duration_ns.unwrap_or(0)),
                0,
            ],
            map_type: type_of(&r.type_name),
            kind: r.kind.label().unwrap_or("small_alloc"),
        }
    }

    /// A hash-bucket map's growth that finished (`None` without a span: an end the probes
    /// did not see whole).
    pub fn growth_end(e: &Evacuated) -> Option<Self> {
        Some(Self {
            values: [0, 0, 0, int(e.duration_ns?)],
            map_type: type_of(&e.type_name),
            kind: "growth_end",
        })
    }
}

/// A sample's key: its location ids, map type and kind.
type SampleKey = (Vec<u64>, Arc<str>, &'static str);

/// Interning tables and summed samples: a profile being built.
#[derive(Default)]
pub struct Profile {
    strings: FxHashMap<Arc<str>, i64>,
    string_table: Vec<String>,
    functions: FxHashMap<(i64, i64), u64>,
    function_list: Vec<proto::Function>,
    locations: FxHashMap<Vec<(u64, i64)>, u64>,
    location_list: Vec<proto::Location>,
    samples: FxHashMap<SampleKey, [i64; 4]>,
}

impl Profile {
    /// An empty profile.
    pub fn new() -> Self {
        let mut p = Self::default();
        p.string("");
        p
    }

    fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.string_table.len() as i64;
        self.string_table.push(s.to_string());
        self.strings.insert(Arc::from(s), i);
        i
    }

    fn function(&mut self, name: &str, file: &str) -> u64 {
        let key = (self.string(name), self.string(file));
        if let Some(&id) = self.functions.get(&key) {
            return id;
        }
        let id = self.function_list.len() as u64 + 1;
        self.function_list.push(proto::Function {
            id,
            name: key.0,
            system_name: key.0,
            filename: key.1,
        });
        self.functions.insert(key, id);
        id
    }

    /// The location ids of a stack: a return address per location, its inlined frames and
    /// the calling function as its lines.
    fn stack(&mut self, origin: &Origin) -> Vec<u64> {
        let mut ids = vec![];
        let mut lines = vec![];
        for f in &origin.stack {
            let function = self.function(&f.function, &f.file);
            lines.push((function, i64::from(f.line)));
            if f.inlined {
                continue;
            }
            let key = std::mem::take(&mut lines);
            let id = match self.locations.get(&key) {
                Some(&id) => id,
                None => {
                    let id = self.location_list.len() as u64 + 1;
                    self.location_list.push(proto::Location {
                        id,
                        mapping_id: 1,
                        line: key
                            .iter()
                            .map(|&(function_id, line)| proto::Line { function_id, line })
                            .collect(),
                    });
                    self.locations.insert(key, id);
                    id
                }
            };
            ids.push(id);
        }
        ids
    }

    /// Adds one event's sample at `origin` (an unsymbolized stack is an empty one).
    pub fn add(&mut self, origin: Option<&Origin>, s: SampleOf) {
        let stack = origin.map(|o| self.stack(o)).unwrap_or_default();
        let v = self
            .samples
            .entry((stack, s.map_type, s.kind))
            .or_insert([0; 4]);
        for (a, b) in v.iter_mut().zip(s.values) {
            *a = a.saturating_add(b);
        }
    }

    /// Distinct (stack, labels) samples so far.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no sample was added.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The message: `exe` and `build_id` name the mapping; `time_ns`/`duration_ns` the span.
    pub fn build(
        mut self,
        exe: &str,
        build_id: Option<&str>,
        time_ns: u64,
        duration_ns: u64,
    ) -> proto::Profile {
        let sample_type: Vec<proto::ValueType> = SAMPLE_TYPES
            .iter()
            .map(|(t, u)| proto::ValueType {
                r#type: self.string(t),
                unit: self.string(u),
            })
            .collect();
        let (map_type, kind) = (self.string("map_type"), self.string("kind"));
        let mut samples: Vec<_> = std::mem::take(&mut self.samples).into_iter().collect();
        // A stable order: the same run gives the same bytes.
        samples.sort_by(|a, b| (&a.0 .0, &*a.0 .1, a.0 .2).cmp(&(&b.0 .0, &*b.0 .1, b.0 .2)));
        let sample = samples
            .into_iter()
            .map(|((location_id, t, k), value)| proto::Sample {
                location_id,
                value: value.to_vec(),
                label: vec![
                    proto::Label {
                        key: map_type,
                        str: self.string(&t),
                    },
                    proto::Label {
                        key: kind,
                        str: self.string(k),
                    },
                ],
            })
            .collect();
        let mapping = vec![proto::Mapping {
            id: 1,
            filename: self.string(exe),
            build_id: self.string(build_id.unwrap_or("")),
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
        }];
        let period_type = Some(proto::ValueType {
            r#type: self.string("resizes"),
            unit: self.string("count"),
        });
        let default_sample_type = self.string("resizes");
        proto::Profile {
            sample_type,
            sample,
            mapping,
            location: self.location_list,
            function: self.function_list,
            string_table: self.string_table,
            time_nanos: int(time_ns),
            duration_nanos: int(duration_ns),
            period_type,
            period: 1,
            default_sample_type,
        }
    }
}

/// A profile's gzipped bytes, as `go tool pprof` reads them.
pub fn gzipped(p: &proto::Profile) -> Vec<u8> {
    use prost::Message;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(&p.encode_to_vec());
    gz.finish().unwrap_or_default()
}

/// Collects a run's map events and writes the profile to its file when tracing ends.
pub struct PprofSink {
    path: PathBuf,
    profile: Profile,
    start: Option<StartInfo>,
}

impl PprofSink {
    /// A sink writing `path` at the end (created then; `open` checks it can be created).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            profile: Profile::new(),
            start: None,
        }
    }
}

impl Sink for PprofSink {
    fn start(&mut self, info: &StartInfo) -> io::Result<()> {
        self.start = Some(info.clone());
        Ok(())
    }

    fn grow(&mut self, g: &Grow) -> io::Result<()> {
        self.profile.add(g.origin.as_deref(), SampleOf::grow(g));
        Ok(())
    }

    fn swiss(&mut self, r: &SwissResize) -> io::Result<()> {
        if r.kind != SwissKind::SmallAlloc || r.origin.is_some() {
            self.profile.add(r.origin.as_deref(), SampleOf::swiss(r));
        }
        Ok(())
    }

    fn slice(&mut self, _s: &SliceGrow) -> io::Result<()> {
        Ok(())
    }

    fn evacuated(&mut self, e: &Evacuated) -> io::Result<()> {
        if let Some(s) = SampleOf::growth_end(e) {
            self.profile.add(e.origin.as_deref(), s);
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self, end: &EndInfo) -> io::Result<()> {
        let (exe, build_id, t0) = match &self.start {
            Some(s) => (s.exe.clone(), s.build_id.clone(), s.time_ns),
            None => (String::new(), None, end.time_ns),
        };
        let profile = std::mem::take(&mut self.profile).build(
            &exe,
            build_id.as_deref(),
            t0,
            end.time_ns.saturating_sub(t0),
        );
        std::fs::write(&self.path, gzipped(&profile))
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::symbols::pclntab::SourcePos;

    fn pos(function: &str, line: u32, inlined: bool) -> SourcePos {
        SourcePos {
            function: function.into(),
            file: format!("{function}.go"),
            line,
            inlined,
        }
    }

    #[test]
    fn test_profile_sums_samples_and_folds_inlined_frames_into_locations() {
        let origin = Origin {
            stack: vec![
                pos("runtime.mapassign_fast64", 10, false),
                pos("main.put", 20, true),
                pos("main.fill", 30, false),
                pos("main.main", 40, false),
            ],
            site: Some(1),
        };
        let mut p = Profile::new();
        let t: Arc<str> = Arc::from("map[int]int");
        for bytes in [100, 200] {
            p.add(
                Some(&origin),
                SampleOf {
                    values: [1, bytes, 0, 0],
                    map_type: t.clone(),
                    kind: "double",
                },
            );
        }
        p.add(
            Some(&origin),
            SampleOf {
                values: [0, 0, 0, 5000],
                map_type: t.clone(),
                kind: "growth_end",
            },
        );
        let built = p.build("/app", Some("abc/def"), 1, 2);
        // Through the wire and back.
        let back = proto::Profile::decode(&*built.encode_to_vec()).unwrap();
        assert_eq!(back, built);
        let s = |i: i64| back.string_table[i as usize].as_str();
        let types: Vec<(&str, &str)> = back
            .sample_type
            .iter()
            .map(|v| (s(v.r#type), s(v.unit)))
            .collect();
        assert_eq!(types, SAMPLE_TYPES);
        assert_eq!(s(back.default_sample_type), "resizes");
        assert_eq!(back.sample.len(), 2);
        let double = back
            .sample
            .iter()
            .find(|x| s(x.label[1].str) == "double")
            .unwrap();
        assert_eq!(double.value, vec![2, 300, 0, 0]);
        assert_eq!(s(double.label[0].str), "map[int]int");
        // Three return addresses: mapassign; put inlined into fill; main.
        assert_eq!(double.location_id.len(), 3);
        let loc = &back.location[double.location_id[1] as usize - 1];
        let names: Vec<&str> = loc
            .line
            .iter()
            .map(|l| s(back.function[l.function_id as usize - 1].name))
            .collect();
        assert_eq!(names, ["main.put", "main.fill"]);
        assert_eq!(loc.line[0].line, 20);
        assert_eq!(s(back.mapping[0].build_id), "abc/def");
        assert_eq!(s(back.mapping[0].filename), "/app");
        // gzip's magic.
        assert_eq!(&gzipped(&back)[..2], &[0x1f, 0x8b]);
    }
}
