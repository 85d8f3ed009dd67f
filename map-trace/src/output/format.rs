//! The formatters every output shares: addresses, byte sizes, durations, times of day and
//! dates. Each sink decides its layout; the way a number reads is decided once, here.

/// `0x…` as Go prints pointers.
pub fn hex(v: u64) -> String {
    format!("{v:#x}")
}

/// `HH:MM:SS.micro` (UTC) of a Unix-ns timestamp.
pub fn clock(time_ns: u64) -> String {
    let secs = time_ns / 1_000_000_000;
    let micros = (time_ns % 1_000_000_000) / 1000;
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{micros:06}",
        day / 3600,
        day % 3600 / 60,
        day % 60
    )
}

/// Bytes with a binary unit: `288 B`, `2.3 KiB`, `4.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A duration: `830 ns`, `74.1 µs`, `12.3 ms`.
pub fn duration(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

/// `2025-01-31 13:45:07.123456 UTC` of a Unix-ns timestamp.
pub fn utc(time_ns: u64) -> String {
    let secs = time_ns / 1_000_000_000;
    let micros = (time_ns % 1_000_000_000) / 1000;
    let days = (secs / 86_400) as i64;
    let day = secs % 86_400;
    // Days since 1970-01-01 → civil date (proleptic Gregorian), after Howard Hinnant.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{micros:06} UTC",
        day / 3600,
        day % 3600 / 60,
        day % 60
    )
}

/// The advice of a "kept after deletes" finding: where the map was made, and how to give the
/// memory back. `health` is its last sample, `peak_entries` the most seen.
pub fn kept_advice(
    type_name: Option<&str>,
    origin: &Option<std::sync::Arc<crate::timeline::Origin>>,
    health: &crate::timeline::health::Health,
    peak_entries: u64,
    discovered: bool,
) -> String {
    let ty = type_name.unwrap_or("map");
    // A discovered map grew before map-trace attached: its site is where it is used.
    let verb = if discovered { "used" } else { "made" };
    let at = crate::timeline::site_of(origin)
        .map(|p| format!(" {verb} at {p}"))
        .unwrap_or_default();
    format!(
        "{ty}{at} holds {} for {} entries (peak {}): Go never shrinks a map; rebuild it with maps.Clone, or recreate it with make({ty}, {}) once it has shrunk",
        bytes(health.storage_bytes),
        health.entries,
        peak_entries,
        health.entries.max(1),
    )
}

/// [`kept_advice`] of a sample.
pub fn sample_advice(m: &crate::timeline::health::MapSample) -> String {
    kept_advice(
        m.type_name.as_deref(),
        &m.origin,
        &m.health,
        m.peak_entries,
        m.discovered,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000000 UTC");
        assert_eq!(
            utc(1_700_000_000_000_000_000 + 1500),
            "2023-11-14 22:13:20.000001 UTC"
        );
        assert_eq!(
            utc(951_782_400_000_000_000),
            "2000-02-29 00:00:00.000000 UTC"
        );
    }
}
