//! CPU time of the system under test, from `/proc/<pid>/stat`: user plus
//! system time of each process (all its threads), sampled when the measured
//! window opens and when it closes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// CPU time of some processes at one moment, with the load generator's
/// own and the whole machine's, to tell other load from the system's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// Clock ticks of user plus system time, per process that could be read.
    ticks: BTreeMap<u32, u64>,
    generator: u64,
    machine: u64,
}

fn process_ticks(pid: &str) -> Option<u64> {
    busy_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

impl Sample {
    pub fn take(pids: &[u32]) -> Self {
        let ticks = pids.iter().filter_map(|&pid| Some((pid, process_ticks(&pid.to_string())?))).collect();
        let machine = std::fs::read_to_string("/proc/stat").ok().and_then(|stat| machine_busy_ticks(&stat));
        Self { ticks, generator: process_ticks("self").unwrap_or(0), machine: machine.unwrap_or(0) }
    }
}

/// Busy ticks of all CPUs from `/proc/stat`'s first line: everything but
/// idle and iowait (guest time is already inside user).
pub fn machine_busy_ticks(stat: &str) -> Option<u64> {
    let fields: Vec<u64> =
        stat.lines().next()?.strip_prefix("cpu ")?.split_ascii_whitespace().filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    let busy = [0, 1, 2, 5, 6, 7].iter().map(|&i| fields.get(i).copied().unwrap_or(0)).sum();
    (fields.len() >= 4).then_some(busy)
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line. The
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted from the last `)`.
pub fn busy_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name come field 3 (state) onwards: utime is the 12th of them.
    let mut fields = after_name.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`AT_CLKTCK` from the process's auxiliary vector;
/// 100, as on every common Linux, when it cannot be read).
pub fn ticks_per_second() -> u64 {
    const AT_CLKTCK: u64 = 17;
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else { return 100 };
    auxv.chunks_exact(16)
        .find_map(|pair| {
            let key = u64::from_ne_bytes(pair[..8].try_into().ok()?);
            let value = u64::from_ne_bytes(pair[8..].try_into().ok()?);
            (key == AT_CLKTCK && value > 0).then_some(value)
        })
        .unwrap_or(100)
}

/// The CPU the system used during the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// Processes asked for, and of those read at both ends of the window.
    pub processes: usize,
    pub processes_read: usize,
    pub cpu_ms: f64,
    /// CPU milliseconds per checkout completed in the window.
    pub ms_per_checkout: Option<f64>,
    /// The load generator's own CPU, and the whole machine's, in the window:
    /// what is left of the machine's is other load sharing the cores.
    pub generator_cpu_ms: f64,
    pub machine_cpu_ms: f64,
}

impl Usage {
    /// Between two samples, over `completed` checkouts; processes missing
    /// from either sample (gone, or never there) are left out.
    pub fn between(before: &Sample, after: &Sample, asked: usize, completed: u64, tick: Duration) -> Self {
        let (mut ticks, mut read) = (0, 0);
        for (pid, end) in &after.ticks {
            if let Some(start) = before.ticks.get(pid) {
                ticks += end.saturating_sub(*start);
                read += 1;
            }
        }
        let ms = |ticks: u64| tick.as_secs_f64() * 1000.0 * ticks as f64;
        let cpu_ms = ms(ticks);
        Self {
            processes: asked,
            processes_read: read,
            cpu_ms,
            ms_per_checkout: (completed > 0).then(|| cpu_ms / completed as f64),
            generator_cpu_ms: ms(after.generator.saturating_sub(before.generator)),
            machine_cpu_ms: ms(after.machine.saturating_sub(before.machine)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_ticks_adds_user_and_system_time_even_with_spaces_in_the_name() {
        let stat = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 1234 0 0 0 750 125 3 4 20 0 9 0 100 0 0";
        assert_eq!(busy_ticks(stat), Some(875));
        assert_eq!(busy_ticks("garbage"), None);
    }

    #[test]
    fn usage_counts_only_processes_seen_at_both_ends_and_divides_by_checkouts() {
        let before = Sample { ticks: BTreeMap::from([(1, 100), (2, 50)]), generator: 10, machine: 1000 };
        let after = Sample { ticks: BTreeMap::from([(1, 300), (3, 999)]), generator: 30, machine: 1500 };
        let usage = Usage::between(&before, &after, 3, 40, Duration::from_millis(10));
        assert_eq!(usage.processes_read, 1);
        assert!((usage.generator_cpu_ms - 200.0).abs() < 1e-9 && (usage.machine_cpu_ms - 5000.0).abs() < 1e-9);
        assert!((usage.cpu_ms - 2000.0).abs() < 1e-9, "{}", usage.cpu_ms);
        assert_eq!(usage.ms_per_checkout, Some(50.0));
        assert_eq!(Usage::between(&before, &after, 3, 0, Duration::from_millis(10)).ms_per_checkout, None);
    }

    #[test]
    fn machine_busy_ticks_leave_out_idle_and_iowait() {
        let stat = "cpu  100 20 30 5000 70 4 6 1 0 0\ncpu0 50 10 15 2500 35 2 3 0 0 0\n";
        assert_eq!(machine_busy_ticks(stat), Some(161));
        assert_eq!(machine_busy_ticks("intr 1 2 3"), None);
    }

    #[test]
    fn this_machine_reports_a_plausible_tick() {
        let ticks = ticks_per_second();
        assert!((1..=10_000).contains(&ticks), "{ticks}");
        assert!(!Sample::take(&[std::process::id()]).ticks.is_empty());
    }
}
