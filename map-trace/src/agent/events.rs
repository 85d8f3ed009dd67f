//! One ring-buffer record → metrics and `--events` lines: decoding, attribution to the
//! executable, the process's container and the call site (with the `--max-sites` cap), and
//! the counts (scaled while duty-cycled).

use super::*;
use crate::{output::pprof::SampleOf, pipeline::fatal_message, timeline::fatal::Misuse};

impl Agent {
    /// Handles one ring-buffer record.
    pub(super) fn record(&mut self, bytes: &[u8]) {
        match decode(bytes) {
            Ok(Event::Exec(h)) => {
                // The announcement precedes the process's own events in the ring, so its
                // container and load address are known before its first grow is counted.
                self.excluded.remove(&h.pid);
                if let Some(p) = self.procs.remove(&h.pid) {
                    self.forget_pid(p.exe, h.pid);
                }
                self.consider(h.pid, Some(h.ts_ns));
            }
            Ok(Event::MapGrow(ev)) => {
                let Some(exe) = self.exes.get(&ev.header.exe) else {
                    return;
                };
                let mut g = interpret(&ev, exe.load_factor_num, self.offset);
                let weight = exe.weight();
                let kind = g.label();
                if let Some(labels) = self.labels(ev.header.exe, ev.header.pid, &ev.stack, kind) {
                    g.origin = self.last_origin.clone();
                    g.type_name = self.type_name(ev.header.exe, ev.header.pid, g.maptype);
                    self.count(&labels, weight, g.bytes_allocated);
                    self.profile(ev.header.exe, SampleOf::grow(&g), weight);
                    let b = u64::from(g.buckets_after.max(1).ilog2());
                    self.track(ev.header.pid, g.map, g.maptype, &labels.site, b);
                    if let Some(sink) = self.events.as_mut() {
                        let _ = sink.grow(&g);
                    }
                }
            }
            Ok(Event::Swiss(ev)) => {
                let Some(mut r) = interpret_swiss(&ev, self.offset) else {
                    return;
                };
                let Some(weight) = self.exes.get(&ev.header.exe).map(Exe::weight) else {
                    return;
                };
                let Some(kind) = r.kind.label() else {
                    return;
                };
                let Some(labels) = self.labels(ev.header.exe, ev.header.pid, &ev.stack, kind)
                else {
                    return;
                };
                r.origin = self.last_origin.clone();
                r.type_name = self.type_name(ev.header.exe, ev.header.pid, r.maptype);
                self.count(&labels, weight, r.bytes_allocated());
                self.profile(ev.header.exe, SampleOf::swiss(&r), weight);
                self.track(
                    ev.header.pid,
                    r.map,
                    r.maptype,
                    &labels.site,
                    r.directory_len_after,
                );
                if let Some(d) = r.duration_ns {
                    self.metrics
                        .grow_duration
                        .get_or_create(&ExeLabels {
                            executable: labels.executable.clone(),
                            go_version: labels.go_version.clone(),
                            kind: kind.into(),
                        })
                        .observe(d as f64 / 1e9);
                }
                if let Some(sink) = self.events.as_mut() {
                    let _ = sink.swiss(&r);
                }
            }
            Ok(Event::Fatal(ev)) => {
                let Some(kind) = Misuse::of(&fatal_message(&ev)) else {
                    return;
                };
                if let Some(labels) =
                    self.labels(ev.header.exe, ev.header.pid, &ev.stack, kind.name())
                {
                    // Never duty-cycled: every one is seen.
                    self.metrics
                        .concurrent_map_fatal
                        .get_or_create(&labels)
                        .inc();
                    if self.events.is_some() {
                        if let Some(c) = self.concurrent_write(&ev, kind) {
                            if let Some(sink) = self.events.as_mut() {
                                let _ = sink.concurrent_write(&c);
                            }
                        }
                    }
                    eprintln!(
                        "map-trace agent: pid {} ({}): fatal error: {} at {} (goroutine {})",
                        ev.header.pid,
                        labels.executable,
                        kind.message(),
                        labels.site,
                        ev.header.goid
                    );
                }
            }
            // The agent does not attach the slice probes.
            Ok(Event::Slice(_) | Event::Evacuated(_) | Event::EvacuateStep(_)) | Err(_) => {}
        }
    }

    /// The `--events` record of a fatal map misuse: the stack, and the map as the decoder
    /// finds it in the calling function's frame (see `symbols::fatal`).
    fn concurrent_write(
        &mut self,
        ev: &map_trace_common::event::MapFatalEvent,
        kind: Misuse,
    ) -> Option<crate::timeline::fatal::ConcurrentWrite> {
        let map = self.procs.get(&ev.header.pid).and_then(|p| p.map.as_ref());
        let sym = self.exes.get_mut(&ev.header.exe)?.symbolizer.as_mut()?;
        let origin: crate::timeline::Origin = sym.call_stack(ev.stack.frames(), map).into();
        let located: crate::timeline::fatal::FatalMap = sym.locate_fatal(ev, map).into();
        let type_name = located.maptype.and_then(|t| sym.type_name(t, map));
        Some(crate::timeline::fatal::ConcurrentWrite {
            time_ns: crate::timeline::to_unix_ns(ev.header.ts_ns, self.offset),
            pid: ev.header.pid,
            tid: ev.header.tid,
            goid: ev.header.goid,
            kind,
            function: located.function,
            origin: (!origin.stack.is_empty()).then(|| Arc::new(origin)),
            map: located.map,
            found: located.found,
            type_name,
            known_origin: None,
        })
    }

    /// Remembers a map that grew, for sampling (when sampling is on).
    fn track(&mut self, pid: u32, map: u64, maptype: u64, site: &str, geometry: u64) {
        if self.cfg.sampling.is_none() {
            return;
        }
        if let Some(p) = self.procs.get_mut(&pid) {
            p.maps.grew(map, maptype, site, geometry);
        }
    }

    /// Counts one growth of `bytes` under `labels`, as `weight` growths when the event probes
    /// are duty-cycled.
    pub(super) fn count(&mut self, labels: &SiteLabels, weight: f64, bytes: u64) {
        let n = self.scaler.add(labels, 1, weight);
        if n > 0 {
            self.metrics.grows.get_or_create(labels).inc_by(n);
        }
        self.metrics
            .grow_bytes
            .get_or_create(labels)
            .inc_by((bytes as f64 * weight).round() as u64);
    }

    /// Labels for an event from process `pid` of executable `exe_id`; `None` for a process the
    /// filters exclude (its file carries probes for another, allowed, process).
    pub(super) fn labels(
        &mut self,
        exe_id: u32,
        pid: u32,
        stack: &Stack,
        kind: &str,
    ) -> Option<SiteLabels> {
        if self.excluded.contains(&pid) {
            return None;
        }
        if !self.procs.contains_key(&pid) {
            // Its exec announcement was lost or predates the agent: look now.
            // Gone already: it is counted below without container labels (and, for a PIE,
            // without a site) rather than not at all.
            if let Some(info) = discover::process(pid) {
                if self.ids.get(&info.identity) != Some(&exe_id) || !self.filters.allows(&info) {
                    self.excluded.insert(pid);
                    return None;
                }
                self.add_proc(exe_id, &info);
            }
        }
        let orphan = Proc {
            exe: exe_id,
            container: Arc::default(),
            maps: Default::default(),
            map: None,
            map_key: if self
                .exes
                .get(&exe_id)
                .and_then(|e| e.symbolizer.as_ref())
                .is_some_and(Symbolizer::needs_process_map)
            {
                ORPHAN
            } else {
                0
            },
        };
        let proc = self.procs.get(&pid).unwrap_or(&orphan);
        let exe = self.exes.get_mut(&exe_id)?;
        let max_sites = self.cfg.max_sites;
        let (site, origin) = match exe.site_cache.get(&(proc.map_key, *stack)) {
            Some(s) => s.clone(),
            None => {
                let (label, origin): (Arc<str>, _) = match exe.symbolizer.as_mut() {
                    Some(sym) => {
                        let s = sym.call_stack(stack.frames(), proc.map.as_ref());
                        let label = match s.site.map(|i| &s.frames[i]) {
                            Some(f) => f.to_string().into(),
                            None => "unknown".into(),
                        };
                        let o: crate::timeline::Origin = s.into();
                        (label, (!o.stack.is_empty()).then(|| Arc::new(o)))
                    }
                    None => ("unknown".into(), None),
                };
                let label = capped_site_label(&mut exe.site_labels, max_sites, label);
                // An exited PIE process's stacks could not be symbolized: nothing to cache.
                if exe.site_cache.len() < 10_000 && proc.map_key != ORPHAN {
                    exe.site_cache
                        .insert((proc.map_key, *stack), (label.clone(), origin.clone()));
                }
                (label, origin)
            }
        };
        self.last_origin = origin;
        Some(SiteLabels {
            executable: exe.name.clone(),
            go_version: exe.go_version.clone(),
            pod_uid: proc.container.pod_uid.clone(),
            container_id: proc.container.container_id.clone(),
            site: site.to_string(),
            kind: kind.into(),
        })
    }

    /// The Go type of the map type descriptor at `maptype` in process `pid` (the symbolizer
    /// caches it).
    fn type_name(&mut self, exe_id: u32, pid: u32, maptype: u64) -> Option<Arc<str>> {
        let map = self.procs.get(&pid).and_then(|p| p.map.as_ref());
        self.exes
            .get_mut(&exe_id)?
            .symbolizer
            .as_mut()?
            .type_name(maptype, map)
    }

    /// Adds one event to executable `exe_id`'s profile window, at the logical stack the last
    /// [`Self::labels`] call found (an unsymbolized stack is an empty one).
    fn profile(&mut self, exe_id: u32, sample: crate::output::pprof::SampleOf, weight: f64) {
        let Some(exe) = self.exes.get(&exe_id) else {
            return;
        };
        let origin = self.last_origin.take().unwrap_or_else(|| {
            Arc::new(crate::timeline::Origin {
                stack: vec![],
                site: None,
            })
        });
        let now = crate::sys::unix_now_ns() / 1_000_000_000;
        let kept = self.profiles.lock().is_ok_and(|mut p| {
            p.add(
                super::profiles::ExeRef {
                    name: &exe.name,
                    path: &exe.path,
                    build_id: exe.build_id.as_deref(),
                },
                now,
                origin,
                sample,
                weight,
            )
        });
        if !kept {
            self.metrics
                .profile_samples_dropped
                .get_or_create(&exe_labels(exe))
                .inc();
        }
    }
}

/// The site label of a call site, `label` while fewer than `max` distinct ones were handed out
/// (they are kept in `seen`), `other` after that: each executable's series stay bounded.
fn capped_site_label(seen: &mut FxHashSet<Arc<str>>, max: usize, label: Arc<str>) -> Arc<str> {
    if seen.contains(&label) {
        label
    } else if seen.len() < max {
        seen.insert(label.clone());
        label
    } else {
        "other".into()
    }
}

/// The `kind` label of a Swiss resize; `None` for a first allocation, which is not counted.
#[cfg(test)]
mod tests {
    use map_trace_common::event::EventKind;

    use super::*;
    use crate::testkit::records;

    #[test]
    fn test_site_labels_are_capped_per_executable() {
        let mut seen = FxHashSet::default();
        let l = |s: &str| -> Arc<str> { s.into() };
        assert_eq!(
            &*capped_site_label(&mut seen, 2, l("main.a (a.go:1)")),
            "main.a (a.go:1)"
        );
        assert_eq!(
            &*capped_site_label(&mut seen, 2, l("main.b (b.go:2)")),
            "main.b (b.go:2)"
        );
        // A third distinct site is "other"; the first two keep their labels.
        assert_eq!(
            &*capped_site_label(&mut seen, 2, l("main.c (c.go:3)")),
            "other"
        );
        assert_eq!(
            &*capped_site_label(&mut seen, 2, l("main.a (a.go:1)")),
            "main.a (a.go:1)"
        );
        assert_eq!(seen.len(), 2);
        assert_eq!(
            &*capped_site_label(&mut FxHashSet::default(), 0, l("x")),
            "other"
        );
    }

    #[test]
    fn test_swiss_resizes_count_their_new_tables() {
        let resize = |kind, cap| {
            interpret_swiss(&records::swiss(kind, 0xc000, cap, 1, 2), 0).expect("a resize")
        };
        // A grow doubles one table: 256 slots of 8 + 8 + 1 bytes.
        let g = resize(EventKind::MapTableGrow, 128);
        assert_eq!(g.kind.label(), Some("table_grow"));
        assert_eq!(g.bytes_allocated(), 256 * 17);
        // A split makes two tables of the same capacity.
        let s = resize(EventKind::MapTableSplit, 1024);
        assert_eq!(s.kind.label(), Some("table_split"));
        assert_eq!(s.bytes_allocated(), 2 * 1024 * 17);
        // Failed reads: counted, without bytes.
        let mut ev = records::swiss(EventKind::MapTableGrow, 0xc000, 128, 1, 1);
        ev.read_error = 1;
        let p = interpret_swiss(&ev, 0).expect("a resize");
        assert!(p.partial);
        assert_eq!(p.bytes_allocated(), 0);
        assert_eq!(crate::timeline::SwissKind::SmallAlloc.label(), None);
    }
}
