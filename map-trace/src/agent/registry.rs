//! Which executables and processes are traced: finding them (a /proc scan, an exec
//! announcement), deciding and attaching per executable, and detaching when the last process
//! running a file exits.

use super::*;

impl Agent {
    pub(super) fn attached(&self) -> usize {
        self.exes.values().filter(|e| e.live).count()
    }

    /// Looks at every process in /proc.
    pub(super) fn scan(&mut self) {
        for pid in discover::all_pids() {
            if !self.procs.contains_key(&pid) {
                self.consider(pid, None);
            }
        }
        if self.skipped.len() > 50_000 {
            self.skipped.clear();
        }
    }

    /// Starts tracing `pid` if it runs a Go executable that passes the filters.
    pub(super) fn consider(&mut self, pid: u32, exec_ts_ns: Option<u64>) {
        if pid == self.self_pid {
            return;
        }
        let Some(info) = discover::process(pid) else {
            return;
        };
        if let Some(&id) = self.ids.get(&info.identity) {
            if self.exes.get(&id).is_some_and(|e| e.live) {
                if self.filters.allows(&info) {
                    self.add_proc(id, &info);
                } else {
                    self.excluded.insert(pid);
                }
                return;
            }
        }
        if self.skipped.contains_key(&info.identity) || !self.filters.allows(&info) {
            return;
        }
        // Open the file once and use that fd for everything: inspecting, attaching (the path
        // stays valid if the process exits meanwhile, and names the inode it runs, even in
        // another mount namespace) and symbolizing. If the process exec'd or its pid was reused
        // since `discover::process`, the fd is another file than `info` describes: leave it
        // (its exec is announced in turn).
        let file = match File::open(&info.exe_path) {
            Ok(f) => f,
            Err(_) => {
                self.count_skip("vanished");
                return;
            }
        };
        if discover::identity(&file).as_ref() != Some(&info.identity) {
            return;
        }
        let fd_path = std::path::PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let plan = match plan::inspect(
            &fd_path,
            plan::Options {
                timed_resizes: true,
                ..plan::Options::default()
            },
        ) {
            Ok(p) => p,
            Err(e) => {
                match skip_reason(&e) {
                    None => {
                        self.skipped.insert(info.identity, Skip::NotGo);
                    }
                    Some(reason) => {
                        eprintln!(
                            "map-trace agent: not tracing pid {pid} ({}): {}",
                            info.exe_display,
                            classify(&e).message
                        );
                        self.skip(&info, reason);
                    }
                }
                return;
            }
        };
        if self.attached() >= self.cfg.max_executables {
            // Not remembered as skipped: once a slot frees up, the next process running this
            // file is tried again.
            eprintln!(
                "map-trace agent: not tracing {} (pid {pid}): --max-executables {} reached",
                info.exe_display, self.cfg.max_executables
            );
            self.count_skip("limit");
            return;
        }
        let id = *self.ids.entry(info.identity).or_insert_with(|| {
            let id = self.next_id;
            self.next_id += 1;
            id
        });
        let started = Instant::now();
        let result = self
            .probes
            .set_layout(Scope::Executable(id), plan.layout.offsets)
            .and_then(|()| self.probes.add_exe_cost(id))
            .and_then(|()| {
                self.probes
                    .attach_sites(&plan.probes, &fd_path, Scope::Executable(id), || Ok(()))
            });
        let links = match result {
            Ok(links) => links,
            Err(e) => {
                self.probes.remove_layout(Scope::Executable(id));
                self.probes.remove_exe_cost(id);
                let vanished = !procfs::alive(pid);
                eprintln!(
                    "map-trace agent: not tracing pid {pid} ({}): {}",
                    info.exe_display,
                    if vanished {
                        "it exited while probes were attached".to_string()
                    } else {
                        classify(&e).message
                    }
                );
                if vanished {
                    // Not the file's fault: the next process running it is tried again.
                    self.count_skip("vanished");
                } else {
                    self.skip(&info, "attach_failed");
                }
                return;
            }
        };
        if let Some(ts) = exec_ts_ns {
            let now = sys::monotonic_ns();
            self.metrics
                .attach_delay
                .observe(now.saturating_sub(ts) as f64 / 1e9);
        }
        eprintln!(
            "map-trace agent: attached {} ({}, {} maps, {} probes) for pid {pid} in {} ms",
            info.exe_display,
            plan.go_version.raw,
            plan.layout.map_impl.name(),
            plan.probes.len(),
            started.elapsed().as_millis()
        );
        let symbolizer = Symbolizer::open(&fd_path, plan.go_version.minor);
        let exe = Exe {
            name: discover::exe_name(&info.exe_display),
            go_version: plan.go_version.raw.clone(),
            load_factor_num: plan.layout.load_factor_num,
            live: true,
            links,
            retiring: Links::default(),
            sites: plan.probes.clone(),
            layout: plan.layout.offsets,
            fd_path,
            budget: self.cfg.budget.map(ExeBudget::new),
            cpu: ExeCpu::default(),
            symbolizer,
            _file: Some(file),
            pids: FxHashSet::default(),
            site_labels: FxHashSet::default(),
            site_cache: FxHashMap::default(),
            heap: plan.heap.as_ref().ok().copied(),
            ino: info.identity.ino,
            path: info.exe_display.clone(),
            build_id: plan.build_id.clone(),
        };
        let families: Vec<Family> = budget::FAMILIES
            .into_iter()
            .filter(|f| exe.links.has(*f))
            .collect();
        // Keep the labels of an executable seen before (its series continue).
        let exe = match self.exes.get_mut(&id) {
            Some(old) => {
                let mut exe = exe;
                exe.name = std::mem::take(&mut old.name);
                exe.go_version = std::mem::take(&mut old.go_version);
                exe.pids = std::mem::take(&mut old.pids);
                exe.site_labels = std::mem::take(&mut old.site_labels);
                *old = exe;
                old
            }
            None => self.exes.entry(id).or_insert(exe),
        };
        for f in families {
            self.metrics
                .probe_duty
                .get_or_create(&family_labels(exe, f))
                .set(1.0);
        }
        self.add_proc(id, &info);
        self.metrics.executables.set(self.attached() as i64);
    }

    pub(super) fn skip(&mut self, info: &ProcessInfo, reason: &str) {
        self.skipped.insert(info.identity, Skip::Reported);
        self.count_skip(reason);
    }

    pub(super) fn count_skip(&mut self, reason: &str) {
        self.metrics
            .skipped
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc();
    }

    pub(super) fn add_proc(&mut self, id: u32, info: &ProcessInfo) {
        let Some(exe) = self.exes.get_mut(&id) else {
            return;
        };
        let pie = exe
            .symbolizer
            .as_ref()
            .is_some_and(|s| s.needs_process_map());
        let map = if pie {
            ProcessMap::read(info.pid, info.identity.ino)
        } else {
            None
        };
        // Processes of a fixed-address executable share every address.
        let map_key = if map.is_some() {
            u64::from(info.pid)
        } else {
            0
        };
        exe.pids.insert(info.pid);
        if let Some(ns) = procfs::cpu_time_ns(info.pid) {
            exe.cpu.baseline(info.pid, ns);
        }
        if let Some(old) = self.procs.insert(
            info.pid,
            Proc {
                exe: id,
                container: Arc::new(info.container.clone()),
                map,
                map_key,
                maps: Default::default(),
            },
        ) {
            if old.exe != id {
                self.forget_pid(old.exe, info.pid);
            }
        }
        self.metrics.processes.set(self.procs.len() as i64);
    }

    pub(super) fn forget_pid(&mut self, exe_id: u32, pid: u32) {
        let Some(exe) = self.exes.get_mut(&exe_id) else {
            return;
        };
        exe.pids.remove(&pid);
        exe.site_cache.retain(|(k, _), _| *k != u64::from(pid));
        if exe.pids.is_empty() {
            self.detach(exe_id);
        }
    }

    pub(super) fn detach(&mut self, id: u32) {
        let Some(exe) = self.exes.get_mut(&id) else {
            return;
        };
        if !exe.live {
            return;
        }
        exe.live = false;
        self.probes.detach_links(std::mem::take(&mut exe.links));
        self.probes.detach_links(std::mem::take(&mut exe.retiring));
        exe.symbolizer = None;
        exe._file = None;
        exe.site_cache = FxHashMap::default();
        exe.budget = None;
        for f in budget::FAMILIES {
            self.metrics.probe_duty.remove(&family_labels(exe, f));
        }
        self.metrics.probe_overhead.remove(&exe_labels(exe));
        self.probes.remove_layout(Scope::Executable(id));
        self.probes.remove_exe_cost(id);
        self.metrics.executables.set(self.attached() as i64);
    }

    /// Drops processes that exited, and detaches executables nobody runs any more. A process
    /// found dead is dropped at the next call (a second later), not at once: its last records
    /// may still wait in the ring behind a full batch, and they need its load address and
    /// container to be counted under the right labels.
    pub(super) fn reap(&mut self) {
        let dead: FxHashSet<u32> = self
            .procs
            .keys()
            .copied()
            .filter(|pid| !procfs::alive(*pid))
            .collect();
        let gone: Vec<(u32, u32)> = dead
            .iter()
            .filter(|pid| self.dying.contains(pid))
            .filter_map(|pid| Some((*pid, self.procs.get(pid)?.exe)))
            .collect();
        self.dying = dead;
        for (pid, exe) in gone {
            self.dying.remove(&pid);
            self.procs.remove(&pid);
            self.forget_pid(exe, pid);
        }
        self.excluded.retain(|pid| procfs::alive(*pid));
        self.metrics.processes.set(self.procs.len() as i64);
    }
}

/// The `reason` label of an executable the plan refused; `None` for a file that is not a Go
/// program of this architecture, which is remembered without a word (most of a host's
/// processes are not Go).
fn skip_reason(e: &anyhow::Error) -> Option<&'static str> {
    match e.chain().find_map(|c| c.downcast_ref::<PlanError>()) {
        Some(PlanError::NotGo(_) | PlanError::ForeignArch(_)) => None,
        Some(PlanError::Unsupported(_)) => Some("unsupported"),
        _ => Some("malformed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_refused_executables_are_skipped_by_kind() {
        let e = |p: PlanError| anyhow::Error::new(p).context("inspecting /proc/self/fd/9");
        assert_eq!(skip_reason(&e(PlanError::NotGo("x".into()))), None);
        assert_eq!(skip_reason(&e(PlanError::ForeignArch("x".into()))), None);
        assert_eq!(
            skip_reason(&e(PlanError::Unsupported("go1.17".into()))),
            Some("unsupported")
        );
        assert_eq!(
            skip_reason(&e(PlanError::Malformed("x".into()))),
            Some("malformed")
        );
        assert_eq!(skip_reason(&anyhow::anyhow!("io")), Some("malformed"));
    }
}
