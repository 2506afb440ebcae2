//! CPU time of the system under test, from `/proc/<pid>/stat`: user plus
//! system time of each process (all its threads), sampled when the measured
//! window opens and when it closes; in all for the processes named by pid,
//! and per component (a service, the broker, PostgreSQL) for the processes
//! found by name.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

/// What to measure: processes by pid, counted together, and components,
/// each counted on its own.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    pub pids: Vec<u32>,
    pub components: Vec<Component>,
}

impl Watch {
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty() && self.components.is_empty()
    }
}

/// A component of the system under test: the processes whose executable
/// name (`/proc/<pid>/comm`) is one of `names`, or that have one of them as
/// an argument or as an argument's last path segment (`kafka.Kafka` for the
/// broker's JVM, `maildev` for `node …/bin/maildev`). A process counts for
/// the first component it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub name: String,
    names: Vec<String>,
}

impl FromStr for Component {
    type Err = String;

    /// `NAME=PROCESS[|PROCESS…]`, e.g. `mail=maildev|mailpit`.
    fn from_str(spec: &str) -> Result<Self, String> {
        let (name, processes) =
            spec.split_once('=').ok_or_else(|| format!("`{spec}` is not NAME=PROCESS[|PROCESS…]"))?;
        let names: Vec<String> = processes.split('|').filter(|p| !p.is_empty()).map(str::to_owned).collect();
        if name.is_empty() || names.is_empty() {
            return Err(format!("`{spec}` names no component or no process"));
        }
        Ok(Self { name: name.to_owned(), names })
    }
}

impl Component {
    /// The checkout stack's components, as `stack.sh` and Compose run them:
    /// PostgreSQL first, whose backends' titles name the services' databases.
    pub fn stack() -> Vec<Self> {
        let named = |name: &str, processes: &[&str]| Self {
            name: name.to_owned(),
            names: processes.iter().map(|process| (*process).to_owned()).collect(),
        };
        let mut components = vec![
            named("postgres", &["postgres"]),
            named("broker", &["kafka.Kafka"]),
            named("mail", &["maildev", "mailpit"]),
        ];
        components.extend(["order", "orchestrator", "inventory", "payment", "notification"].map(|s| named(s, &[s])));
        components
    }

    fn matches(&self, comm: &str, args: &[&str]) -> bool {
        self.names.iter().any(|name| {
            comm == name || args.iter().any(|arg| arg == name || arg.rsplit('/').next() == Some(name.as_str()))
        })
    }
}

/// CPU time of some processes at one moment, with the load generator's
/// own and the whole machine's, to tell other load from the system's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// Clock ticks of user plus system time, per process that could be read.
    ticks: BTreeMap<u32, u64>,
    /// The same, per component, of the processes found for it.
    components: BTreeMap<String, BTreeMap<u32, u64>>,
    generator: u64,
    machine: u64,
}

fn process_ticks(pid: &str) -> Option<u64> {
    busy_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

impl Sample {
    pub fn take(watch: &Watch) -> Self {
        let ticks = watch.pids.iter().filter_map(|&pid| Some((pid, process_ticks(&pid.to_string())?))).collect();
        let machine = std::fs::read_to_string("/proc/stat").ok().and_then(|stat| machine_busy_ticks(&stat));
        let mut components: BTreeMap<String, BTreeMap<u32, u64>> =
            watch.components.iter().map(|c| (c.name.clone(), BTreeMap::new())).collect();
        if !watch.components.is_empty() {
            for (pid, comm, cmdline) in processes() {
                let args: Vec<&str> = cmdline.split('\0').filter(|a| !a.is_empty()).collect();
                let found = watch.components.iter().find(|c| c.matches(&comm, &args));
                if let (Some(component), Some(ticks)) = (found, process_ticks(&pid.to_string())) {
                    components.entry(component.name.clone()).or_default().insert(pid, ticks);
                }
            }
        }
        Self { ticks, components, generator: process_ticks("self").unwrap_or(0), machine: machine.unwrap_or(0) }
    }
}

/// Every other process: pid, executable name, NUL-separated arguments.
fn processes() -> impl Iterator<Item = (u32, String, String)> {
    let me = std::process::id();
    std::fs::read_dir("/proc").into_iter().flatten().flatten().filter_map(move |entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        if pid == me {
            return None;
        }
        let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        Some((pid, comm.trim_end().to_owned(), String::from_utf8_lossy(&cmdline).into_owned()))
    })
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
    /// Per component, in the order given.
    pub components: Vec<ComponentUsage>,
    /// The machine's CPU per checkout that neither the components nor the
    /// load generator account for (other load, the kernel's own threads).
    pub other_ms_per_checkout: Option<f64>,
}

/// One component's CPU in the window. A process that started during the
/// window counts in full; one that ended during it is not seen.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentUsage {
    pub name: String,
    pub processes: usize,
    pub cpu_ms: f64,
    pub ms_per_checkout: Option<f64>,
}

impl Usage {
    /// Between two samples, over `completed` checkouts; processes missing
    /// from either sample (gone, or never there) are left out.
    pub fn between(before: &Sample, after: &Sample, watch: &Watch, completed: u64, tick: Duration) -> Self {
        let per_checkout = |ms: f64| (completed > 0).then(|| ms / completed as f64);
        let ms = |ticks: u64| tick.as_secs_f64() * 1000.0 * ticks as f64;
        let components: Vec<ComponentUsage> = watch
            .components
            .iter()
            .map(|component| {
                let (start, end) = (before.components.get(&component.name), after.components.get(&component.name));
                let end = end.cloned().unwrap_or_default();
                let ticks: u64 = end
                    .iter()
                    .map(|(pid, ticks)| ticks.saturating_sub(start.and_then(|s| s.get(pid)).copied().unwrap_or(0)))
                    .sum();
                let cpu_ms = ms(ticks);
                ComponentUsage {
                    name: component.name.clone(),
                    processes: end.len(),
                    cpu_ms,
                    ms_per_checkout: per_checkout(cpu_ms),
                }
            })
            .collect();
        let (mut ticks, mut read) = (0, 0);
        for (pid, end) in &after.ticks {
            if let Some(start) = before.ticks.get(pid) {
                ticks += end.saturating_sub(*start);
                read += 1;
            }
        }
        let cpu_ms = ms(ticks);
        let generator_cpu_ms = ms(after.generator.saturating_sub(before.generator));
        let machine_cpu_ms = ms(after.machine.saturating_sub(before.machine));
        let accounted: f64 = components.iter().map(|c| c.cpu_ms).sum::<f64>() + generator_cpu_ms;
        let other_ms_per_checkout =
            if components.is_empty() { None } else { per_checkout((machine_cpu_ms - accounted).max(0.0)) };
        Self {
            processes: watch.pids.len(),
            processes_read: read,
            cpu_ms,
            ms_per_checkout: per_checkout(cpu_ms),
            generator_cpu_ms,
            machine_cpu_ms,
            components,
            other_ms_per_checkout,
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
        let before =
            Sample { ticks: BTreeMap::from([(1, 100), (2, 50)]), generator: 10, machine: 1000, ..Sample::default() };
        let after =
            Sample { ticks: BTreeMap::from([(1, 300), (3, 999)]), generator: 30, machine: 1500, ..Sample::default() };
        let watch = Watch { pids: vec![1, 2, 3], components: Vec::new() };
        let usage = Usage::between(&before, &after, &watch, 40, Duration::from_millis(10));
        assert_eq!(usage.processes_read, 1);
        assert!((usage.generator_cpu_ms - 200.0).abs() < 1e-9 && (usage.machine_cpu_ms - 5000.0).abs() < 1e-9);
        assert!((usage.cpu_ms - 2000.0).abs() < 1e-9, "{}", usage.cpu_ms);
        assert_eq!(usage.ms_per_checkout, Some(50.0));
        assert_eq!(usage.other_ms_per_checkout, None, "no components, nothing to set apart");
        assert_eq!(Usage::between(&before, &after, &watch, 0, Duration::from_millis(10)).ms_per_checkout, None);
    }

    #[test]
    fn a_component_counts_its_processes_new_ones_in_full_and_the_rest_of_the_machine_is_other() {
        let watch =
            Watch { pids: Vec::new(), components: vec!["db=postgres".parse().unwrap(), "api=order".parse().unwrap()] };
        let before = Sample {
            components: BTreeMap::from([
                ("db".to_owned(), BTreeMap::from([(7, 100)])),
                ("api".to_owned(), BTreeMap::from([(9, 40)])),
            ]),
            generator: 0,
            machine: 1000,
            ..Sample::default()
        };
        // Backend 8 started in the window; 9 ended in it and is not seen.
        let after = Sample {
            components: BTreeMap::from([("db".to_owned(), BTreeMap::from([(7, 160), (8, 20)]))]),
            generator: 10,
            machine: 1200,
            ..Sample::default()
        };
        let usage = Usage::between(&before, &after, &watch, 10, Duration::from_millis(10));
        let db = &usage.components[0];
        assert_eq!((db.name.as_str(), db.processes), ("db", 2));
        assert!((db.cpu_ms - 800.0).abs() < 1e-9, "{}", db.cpu_ms);
        assert_eq!(db.ms_per_checkout, Some(80.0));
        assert_eq!((usage.components[1].processes, usage.components[1].cpu_ms), (0, 0.0));
        // 2000 ms of machine, 800 of the database, 100 of the generator.
        assert_eq!(usage.other_ms_per_checkout, Some(110.0));
    }

    #[test]
    fn a_component_is_parsed_and_matches_by_executable_argument_or_argument_path() {
        let mail: Component = "mail=maildev|mailpit".parse().unwrap();
        assert!(mail.matches("node", &["node", "/srv/node_modules/maildev/bin/maildev", "--ip", "127.0.0.1"]));
        assert!(mail.matches("mailpit", &["/mailpit"]));
        assert!(!mail.matches("node", &["node", "/srv/app.js"]));
        let broker: Component = "broker=kafka.Kafka".parse().unwrap();
        assert!(broker.matches("java", &["java", "-Xmx512m", "-cp", "libs/*", "kafka.Kafka", "server.properties"]));
        let order: Component = "order=order".parse().unwrap();
        assert!(!order.matches("postgres", &["postgres: postgres checkout_order 127.0.0.1(5432) idle"]));
        for bad in ["order", "=order", "order=", "order=|"] {
            assert!(bad.parse::<Component>().is_err(), "{bad}");
        }
        let stack: Vec<String> = Component::stack().into_iter().map(|c| c.name).collect();
        assert_eq!(stack[0], "postgres", "before the services, whose names its backends' titles hold");
        assert_eq!(stack.len(), 8);
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
        let me = std::process::id();
        assert!(!Sample::take(&Watch { pids: vec![me], components: Vec::new() }).ticks.is_empty());
        // This test's parent, cargo, found by its executable name.
        let parent = std::fs::read_to_string("/proc/self/stat").unwrap();
        let ppid: u32 =
            parent[parent.rfind(')').unwrap() + 1..].split_ascii_whitespace().nth(1).unwrap().parse().unwrap();
        let comm = std::fs::read_to_string(format!("/proc/{ppid}/comm")).unwrap();
        let watch =
            Watch { pids: Vec::new(), components: vec![format!("parent={}", comm.trim_end()).parse().unwrap()] };
        assert!(Sample::take(&watch).components["parent"].contains_key(&ppid));
    }
}
