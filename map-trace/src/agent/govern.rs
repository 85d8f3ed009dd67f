//! The per-executable overhead budget, applied: every 250 ms each executable's probe cost
//! against its processes' CPU time (`budget::ExeBudget` decides), shedding the resize timing
//! and duty-cycling the event probes of the ones over it.

use super::*;

impl Agent {
    /// The budget check of every traced executable (every 250 ms).
    pub(super) fn govern(&mut self) {
        let now = self.now_ns();
        let ids: Vec<u32> = self
            .exes
            .iter()
            .filter(|(_, e)| e.live && e.budget.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let cost = self.probes.exe_cost(id);
            let Some(exe) = self.exes.get_mut(&id) else {
                continue;
            };
            // Shed timing's RET probes: the body probes have sent resizes themselves since
            // the last tick, so no call waits for them.
            self.probes.detach_links(std::mem::take(&mut exe.retiring));
            let cpu = exe.read_cpu();
            let spent = ExeBudget::spent(&cost, &self.hit_cost);
            let Some(b) = exe.budget.as_mut() else {
                continue;
            };
            let actions = b.check(&spent, cpu, now);
            let share = b.last_share;
            let percent = self.cfg.budget.unwrap_or(0.0);
            if let Some(share) = share {
                self.metrics
                    .probe_overhead
                    .get_or_create(&exe_labels(exe))
                    .set(share / 100.0);
            }
            for a in actions {
                match a {
                    Action::ShedTiming(share) => {
                        // The body probes send resizes untimed from now on; the RET probes
                        // go at the next tick.
                        let mut untimed = exe.layout;
                        untimed.flags &= !LAYOUT_TIMED_RESIZES;
                        exe.layout = untimed;
                        if let Err(e) = self.probes.set_layout(Scope::Executable(id), untimed) {
                            eprintln!("map-trace agent: warning: {} : {e:#}", exe.name);
                            continue;
                        }
                        exe.retiring = exe.links.take_family(Family::TimedResizes);
                        eprintln!(
                            "map-trace agent: {}: shed timed_resizes: its probes took an estimated {share:.1}% of its CPU time (budget {percent}%); resizes are still counted, untimed",
                            exe.name
                        );
                        let l = family_labels(exe, Family::TimedResizes);
                        self.metrics.probe_duty.get_or_create(&l).set(0.0);
                        self.metrics.budget_sheds.get_or_create(&l).inc();
                    }
                    Action::StartCycling { share, duty } => {
                        self.probes.detach_family(&mut exe.links, Family::Maps);
                        eprintln!(
                            "map-trace agent: {}: sampling maps: its probes took an estimated {share:.1}% of its CPU time (budget {percent}%); attached {:.1}% of the time from now on, counts scaled",
                            exe.name,
                            duty * 100.0
                        );
                        let l = family_labels(exe, Family::Maps);
                        self.metrics.probe_duty.get_or_create(&l).set(duty);
                        self.metrics.budget_sheds.get_or_create(&l).inc();
                    }
                }
            }
        }
    }

    /// Switches every duty-cycled executable whose switch is due.
    pub(super) fn switch_due(&mut self) {
        let now = self.now_ns();
        let due: Vec<u32> = self
            .exes
            .iter()
            .filter(|(_, e)| {
                e.live
                    && e.budget
                        .as_ref()
                        .and_then(ExeBudget::switch_at_ns)
                        .is_some_and(|t| t <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let cost = self.probes.exe_cost(id);
            let Some(exe) = self.exes.get_mut(&id) else {
                continue;
            };
            let est = ExeBudget::estimate(Family::Maps, &cost, &self.hit_cost);
            let cpu = exe.read_cpu();
            let Some(b) = exe.budget.as_mut() else {
                continue;
            };
            if b.maps_on() {
                self.probes.detach_family(&mut exe.links, Family::Maps);
                let keep_cycling = b.switched_off(now, est, cpu);
                let duty = b.duty();
                let l = family_labels(exe, Family::Maps);
                if keep_cycling {
                    self.metrics.probe_duty.get_or_create(&l).set(duty);
                    continue;
                }
                eprintln!(
                    "map-trace agent: {}: maps attached for good again: its probes now fit the budget",
                    exe.name
                );
                self.metrics.probe_duty.get_or_create(&l).set(1.0);
            }
            // Attach the event probes: for a window, or for good when cycling ended.
            let attached = self.probes.attach_family(
                &exe.sites,
                Family::Maps,
                &exe.fd_path,
                Scope::Executable(id),
            );
            if let Err(e) = attached.map(|l| exe.links.append(l)) {
                eprintln!(
                    "map-trace agent: {}: could not attach its probes again: {}",
                    exe.name,
                    classify(&e).message
                );
                self.detach(id);
                continue;
            }
            // The window counts from when the probes are live.
            let live_at = self.clock.elapsed().as_nanos() as u64;
            if let Some(b) = exe.budget.as_mut().filter(|b| !b.maps_on()) {
                b.switched_on(live_at, est, cpu);
            }
        }
    }
}
