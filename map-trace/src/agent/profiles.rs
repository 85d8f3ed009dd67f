//! `GET /debug/pprof/mapgrowth?seconds=N&executable=NAME`: a pprof profile of each traced
//! executable's map growth over the last N seconds (like Go's own delta profiles), from a
//! window of one-second buckets (`--profile-window`).
//!
//! Memory is bounded: at most `--max-profile-stacks` distinct stacks per executable live in the
//! window; a sample at another stack is dropped and counted
//! (`map_trace_profile_samples_dropped_total`). Duty-cycled executables' samples count for
//! `1 / duty` each, as their metrics do.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::{
    output::pprof::{gzipped, Profile, SampleOf},
    timeline::Origin,
};

/// A sample's stack, map type and kind.
type Key = (Arc<Origin>, Arc<str>, &'static str);

/// One bucket's sums.
type Sums = FxHashMap<Key, [f64; 4]>;

/// The executable an event belongs to: its `executable` label, path and Go build ID.
#[derive(Clone, Copy)]
pub struct ExeRef<'a> {
    pub name: &'a str,
    pub path: &'a str,
    pub build_id: Option<&'a str>,
}

/// One executable's window.
struct ExeWindow {
    path: String,
    build_id: Option<String>,
    /// (second, sums), oldest first.
    buckets: VecDeque<(u64, Sums)>,
    /// Distinct stacks in the window.
    stacks: FxHashSet<Arc<Origin>>,
}

/// Every executable's window.
pub struct Profiles {
    window_secs: u64,
    max_stacks: usize,
    exes: FxHashMap<String, ExeWindow>,
}

/// Why a request gets no profile.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A bad query: 400.
    Bad(String),
    /// No such executable: 404.
    Unknown(String),
}

impl Profiles {
    /// Profiles of the last `window_secs` (at least 1), `max_stacks` stacks per executable.
    pub fn new(window_secs: u64, max_stacks: usize) -> Self {
        Self {
            window_secs: window_secs.max(1),
            max_stacks,
            exes: FxHashMap::default(),
        }
    }

    /// The window, in seconds (the most a request may ask for).
    pub fn window_secs(&self) -> u64 {
        self.window_secs
    }

    /// Adds one event of `exe` at Unix second `now`, weighted `weight`; `false` if it was
    /// dropped (a new stack over the cap).
    pub fn add(
        &mut self,
        exe: ExeRef<'_>,
        now: u64,
        origin: Arc<Origin>,
        s: SampleOf,
        weight: f64,
    ) -> bool {
        let w = self
            .exes
            .entry(exe.name.to_string())
            .or_insert_with(|| ExeWindow {
                path: exe.path.to_string(),
                build_id: exe.build_id.map(str::to_string),
                buckets: VecDeque::new(),
                stacks: FxHashSet::default(),
            });
        expire(w, now, self.window_secs);
        if !w.stacks.contains(&origin) {
            if w.stacks.len() >= self.max_stacks {
                return false;
            }
            w.stacks.insert(origin.clone());
        }
        if w.buckets.back().is_none_or(|(t, _)| *t != now) {
            w.buckets.push_back((now, Sums::default()));
        }
        let (_, sums) = w.buckets.back_mut().expect("a bucket");
        let v = sums.entry((origin, s.map_type, s.kind)).or_insert([0.0; 4]);
        for (a, b) in v.iter_mut().zip(s.values) {
            *a += b as f64 * weight;
        }
        true
    }

    /// The gzipped profile of executable `name` (or of the only one, when `None`) over the
    /// `seconds` before Unix second `now`.
    pub fn profile(
        &mut self,
        name: Option<&str>,
        seconds: u64,
        now: u64,
    ) -> Result<Vec<u8>, Refusal> {
        if seconds == 0 || seconds > self.window_secs {
            return Err(Refusal::Bad(format!(
                "seconds must be 1 to {} (--profile-window)",
                self.window_secs
            )));
        }
        let known = || {
            let mut v: Vec<&str> = self.exes.keys().map(String::as_str).collect();
            v.sort_unstable();
            v.join(", ")
        };
        let name = match name {
            Some(n) => n.to_string(),
            None if self.exes.len() == 1 => self.exes.keys().next().expect("one").clone(),
            None => {
                return Err(Refusal::Bad(format!(
                    "executable=NAME is needed; profiled: {}",
                    known()
                )))
            }
        };
        let window = self.window_secs;
        if !self.exes.contains_key(&name) {
            return Err(Refusal::Unknown(format!(
                "no executable {name:?} profiled; profiled: {}",
                known()
            )));
        }
        let w = self.exes.get_mut(&name).expect("checked");
        expire(w, now, window);
        let since = now.saturating_sub(seconds);
        let mut p = Profile::new();
        for (t, sums) in &w.buckets {
            if *t <= since {
                continue;
            }
            for ((origin, map_type, kind), v) in sums {
                p.add(
                    Some(origin),
                    SampleOf {
                        values: v.map(|x| x.round() as i64),
                        map_type: map_type.clone(),
                        kind,
                    },
                );
            }
        }
        let built = p.build(
            &w.path,
            w.build_id.as_deref(),
            since.saturating_mul(1_000_000_000),
            seconds.saturating_mul(1_000_000_000),
        );
        Ok(gzipped(&built))
    }
}

/// Drops the buckets older than the window, and the stacks only they held.
fn expire(w: &mut ExeWindow, now: u64, window: u64) {
    let before = w.buckets.len();
    while w.buckets.front().is_some_and(|(t, _)| *t + window <= now) {
        w.buckets.pop_front();
    }
    if w.buckets.len() != before {
        w.stacks = w
            .buckets
            .iter()
            .flat_map(|(_, s)| s.keys().map(|k| k.0.clone()))
            .collect();
    }
}

/// The store the agent's event loop fills and the HTTP thread reads.
pub type Shared = Arc<Mutex<Profiles>>;

/// The query's `seconds` and `executable` (percent-decoded): defaults 60 and none.
pub fn query(target: &str) -> Result<(u64, Option<String>), Refusal> {
    let mut seconds = 60;
    let mut exe = None;
    let q = target.split_once('?').map_or("", |(_, q)| q);
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = decode(v).ok_or_else(|| Refusal::Bad(format!("bad {k} value")))?;
        match k {
            "seconds" => {
                seconds = v
                    .parse()
                    .map_err(|_| Refusal::Bad(format!("seconds={v:?} is not a whole number")))?;
            }
            "executable" => exe = Some(v),
            _ => {}
        }
    }
    Ok((seconds, exe))
}

/// `%XX` and `+` decoding of a query value.
fn decode(v: &str) -> Option<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::{output::pprof::proto, symbols::pclntab::SourcePos};

    fn origin(f: &str) -> Arc<Origin> {
        Arc::new(Origin {
            stack: vec![SourcePos {
                function: f.into(),
                file: "f.go".into(),
                line: 1,
                inlined: false,
            }],
            site: Some(0),
        })
    }

    fn sample(bytes: i64) -> SampleOf {
        SampleOf {
            values: [1, bytes, 0, 0],
            map_type: Arc::from("map[int]int"),
            kind: "double",
        }
    }

    fn decoded(gz: &[u8]) -> proto::Profile {
        use std::io::Read;
        let mut raw = vec![];
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut raw)
            .unwrap();
        proto::Profile::decode(&*raw).unwrap()
    }

    #[test]
    fn test_window_seconds_and_the_stack_cap() {
        let mut p = Profiles::new(10, 2);
        assert!(p.add(
            ExeRef {
                name: "app",
                path: "/app",
                build_id: Some("id")
            },
            100,
            origin("main.a"),
            sample(10),
            1.0
        ));
        assert!(p.add(
            ExeRef {
                name: "app",
                path: "/app",
                build_id: None
            },
            105,
            origin("main.b"),
            sample(20),
            2.0
        ));
        // A third stack: over the cap, dropped.
        assert!(!p.add(
            ExeRef {
                name: "app",
                path: "/app",
                build_id: None
            },
            105,
            origin("main.c"),
            sample(40),
            1.0
        ));
        // The last 5 s hold the second only, scaled by its weight; the last 10 both.
        let last5 = decoded(&p.profile(Some("app"), 5, 106).unwrap());
        assert_eq!(last5.sample.len(), 1);
        assert_eq!(last5.sample[0].value, vec![2, 40, 0, 0]);
        let all = decoded(&p.profile(None, 10, 106).unwrap());
        let total: i64 = all.sample.iter().map(|s| s.value[1]).sum();
        assert_eq!(total, 50);
        // Past the window the first stack's bucket is gone: a new stack fits again.
        assert!(p.add(
            ExeRef {
                name: "app",
                path: "/app",
                build_id: None
            },
            111,
            origin("main.c"),
            sample(40),
            1.0
        ));
        assert_eq!(
            p.profile(Some("app"), 11, 111),
            Err(Refusal::Bad(
                "seconds must be 1 to 10 (--profile-window)".into()
            ))
        );
        assert!(matches!(
            p.profile(Some("db"), 5, 111),
            Err(Refusal::Unknown(_))
        ));
        p.add(
            ExeRef {
                name: "db",
                path: "/db",
                build_id: None,
            },
            111,
            origin("main.d"),
            sample(1),
            1.0,
        );
        assert!(matches!(p.profile(None, 5, 111), Err(Refusal::Bad(_))));
    }

    #[test]
    fn test_query() {
        assert_eq!(query("/debug/pprof/mapgrowth"), Ok((60, None)));
        assert_eq!(
            query("/debug/pprof/mapgrowth?seconds=5&executable=my%2Dapp"),
            Ok((5, Some("my-app".into())))
        );
        assert!(matches!(
            query("/debug/pprof/mapgrowth?seconds=x"),
            Err(Refusal::Bad(_))
        ));
    }
}
