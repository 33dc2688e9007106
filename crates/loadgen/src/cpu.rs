//! CPU time of the generator and the server over a run, and the busy time of the cores they
//! run on, from /proc: to tell whether the server, the generator or neither was the
//! bottleneck, and whether other processes were competing for the same cores.

use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

/// Clock ticks per second of the times in /proc (USER_HZ, 100 on every Linux build that
/// matters here).
const TICKS_PER_SEC: f64 = 100.0;
/// At or above this share of its cores, a process counts as saturated.
const SATURATED_PCT: f64 = 90.0;

pub struct Snapshot {
    at: Instant,
    own_ticks: u64,
    server_ticks: Option<u64>,
    /// Busy and total ticks of every core, by core number.
    cores: Vec<(u64, u64)>,
}

/// CPU use over a run, in percent of one core unless said otherwise.
#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    /// The generator's CPU time over the run, per core it may use.
    pub generator_pct: f64,
    pub generator_cores: Vec<usize>,
    /// The server's CPU time over the run, per core it may use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_pct: Option<f64>,
    pub server_cores: Vec<usize>,
    /// How busy the generator's and the server's cores were, by every process: well above
    /// the process's own share means other load competed for the core.
    pub generator_cores_busy_pct: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cores_busy_pct: Option<f64>,
    /// "server", "generator", "both" or "neither" (then latency or contention limited).
    pub saturated: String,
}

/// A snapshot of the generator's CPU time, the server's (the processes `server`, summed with
/// every process they started: a cluster's nodes, NATS and PostgreSQL with its backends;
/// `None` without a pid or if one of them is gone) and every core's.
pub fn snapshot(server: &[u32]) -> Snapshot {
    Snapshot {
        at: Instant::now(),
        own_ticks: process_ticks("self").unwrap_or(0),
        server_ticks: (!server.is_empty())
            .then(|| tree_ticks(server).ok())
            .flatten(),
        cores: core_ticks().unwrap_or_default(),
    }
}

impl Snapshot {
    /// Wall-clock seconds from `earlier` to this snapshot.
    pub fn seconds_since(&self, earlier: &Snapshot) -> f64 {
        self.at.duration_since(earlier.at).as_secs_f64()
    }
}

/// CPU time spent between two snapshots, in milliseconds: the server's (if its pid was
/// given) and the generator's.
pub fn spent_ms(before: &Snapshot, after: &Snapshot) -> (Option<f64>, f64) {
    let ms = |ticks: u64| ticks as f64 * 1000.0 / TICKS_PER_SEC;
    let server = match (before.server_ticks, after.server_ticks) {
        (Some(start), Some(end)) => Some(ms(end.saturating_sub(start))),
        _ => None,
    };
    (server, ms(after.own_ticks.saturating_sub(before.own_ticks)))
}

/// CPU use between two snapshots; the server's share is of the cores its processes may use
/// together (one, when they are all pinned to the same core).
pub fn usage(before: &Snapshot, after: &Snapshot, server: &[u32]) -> CpuUse {
    let seconds = after.at.duration_since(before.at).as_secs_f64().max(1e-6);
    let generator_cores = allowed_cores("self").unwrap_or_default();
    let mut server_cores: Vec<usize> = server
        .iter()
        .filter_map(|pid| allowed_cores(&pid.to_string()).ok())
        .flatten()
        .collect();
    server_cores.sort_unstable();
    server_cores.dedup();
    let share = |ticks: u64, cores: usize| {
        100.0 * ticks as f64 / TICKS_PER_SEC / seconds / cores.max(1) as f64
    };
    let generator_pct = share(
        after.own_ticks.saturating_sub(before.own_ticks),
        generator_cores.len(),
    );
    let server_pct = match (before.server_ticks, after.server_ticks) {
        (Some(start), Some(end)) => Some(share(end.saturating_sub(start), server_cores.len())),
        _ => None,
    };
    let busy = |cores: &[usize]| -> f64 {
        let (mut busy, mut total) = (0u64, 0u64);
        for &core in cores {
            if let (Some(start), Some(end)) = (before.cores.get(core), after.cores.get(core)) {
                busy += end.0.saturating_sub(start.0);
                total += end.1.saturating_sub(start.1);
            }
        }
        if total == 0 {
            0.0
        } else {
            100.0 * busy as f64 / total as f64
        }
    };
    let generator_busy = generator_pct >= SATURATED_PCT;
    let server_busy = server_pct.is_some_and(|pct| pct >= SATURATED_PCT);
    let saturated = match (server_busy, generator_busy) {
        (true, true) => "both",
        (true, false) => "server",
        (false, true) => "generator",
        (false, false) => "neither",
    };
    CpuUse {
        generator_pct,
        generator_cores_busy_pct: busy(&generator_cores),
        server_cores_busy_pct: (!server.is_empty()).then(|| busy(&server_cores)),
        generator_cores,
        server_pct,
        server_cores,
        saturated: saturated.into(),
    }
}

/// User plus system ticks of a process (`self` or a pid).
fn process_ticks(pid: &str) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    Ok(parse_stat(&stat)?.ticks)
}

/// What this module reads from a /proc/<pid>/stat line.
struct Stat {
    parent: u32,
    /// User plus system ticks of the process itself.
    ticks: u64,
    /// ... and of its children that ended and were waited for.
    ended_children_ticks: u64,
}

fn parse_stat(stat: &str) -> anyhow::Result<Stat> {
    // The command name, in parentheses, may hold spaces: count fields after it.
    let after_name = &stat[stat.rfind(')').context("no ')' in stat")? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 4 (ppid), 14-15 (utime, stime) and 16-17 (cutime, cstime) of stat(5); the
    // first after the name is field 3.
    let field = |number: usize| -> anyhow::Result<u64> {
        let value = fields.get(number - 3).context("stat line too short")?;
        Ok(value.parse()?)
    };
    Ok(Stat {
        parent: u32::try_from(field(4)?)?,
        ticks: field(14)? + field(15)?,
        ended_children_ticks: field(16)? + field(17)?,
    })
}

/// CPU ticks of the processes `roots` and of every process they started, still running or
/// ended (PostgreSQL starts a process per connection; the kernel adds an ended child's
/// time to its parent's once the parent has waited for it). Fails if a root is gone.
fn tree_ticks(roots: &[u32]) -> anyhow::Result<u64> {
    // Every process and its parent: /proc has no list of a process's children unless the
    // kernel was built with CONFIG_PROC_CHILDREN.
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may end between the listing and the read.
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Ok(stat) = parse_stat(&stat)
        {
            all.push((pid, stat));
        }
    }
    let mut total = 0;
    let mut tree: Vec<u32> = Vec::new();
    for &root in roots {
        let Some((_, stat)) = all.iter().find(|(pid, _)| *pid == root) else {
            anyhow::bail!("process {root} is gone");
        };
        total += stat.ticks + stat.ended_children_ticks;
        tree.push(root);
    }
    let mut next = 0;
    while next < tree.len() {
        let parent = tree[next];
        next += 1;
        for (pid, stat) in &all {
            if stat.parent == parent && !tree.contains(pid) {
                total += stat.ticks + stat.ended_children_ticks;
                tree.push(*pid);
            }
        }
    }
    Ok(total)
}

/// Busy and total ticks per core from /proc/stat.
fn core_ticks() -> anyhow::Result<Vec<(u64, u64)>> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let mut cores = Vec::new();
    for line in stat.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let Some(Ok(core)) = fields.next().map(str::parse::<usize>) else {
            continue; // the "cpu" total line
        };
        let values: Vec<u64> = fields.filter_map(|field| field.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal (guest times are inside user).
        let total: u64 = values.iter().take(8).sum();
        let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
        if cores.len() <= core {
            cores.resize(core + 1, (0, 0));
        }
        cores[core] = (total.saturating_sub(idle), total);
    }
    Ok(cores)
}

/// The cores a process may run on (its affinity, as set by taskset), from
/// `Cpus_allowed_list` in /proc/<pid>/status.
pub fn allowed_cores(pid: &str) -> anyhow::Result<Vec<usize>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let list = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .context("no Cpus_allowed_list")?;
    parse_core_list(list)
}

/// "0-2,5" -> [0, 1, 2, 5]
fn parse_core_list(list: &str) -> anyhow::Result<Vec<usize>> {
    let mut cores = Vec::new();
    for part in list.trim().split(',').filter(|part| !part.is_empty()) {
        match part.split_once('-') {
            Some((first, last)) => cores.extend(first.parse::<usize>()?..=last.parse()?),
            None => cores.push(part.parse()?),
        }
    }
    Ok(cores)
}

/// Resident memory of the server's processes together, from /proc/<pid>/status; `None`
/// without a pid.
pub fn server_resident_kib(server: &[u32]) -> anyhow::Result<Option<u64>> {
    if server.is_empty() {
        return Ok(None);
    }
    server
        .iter()
        .map(|&pid| resident_kib(pid))
        .sum::<anyhow::Result<u64>>()
        .map(Some)
}

/// Resident memory of a process, from /proc/<pid>/status.
fn resident_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading the status of process {pid}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .context("no VmRSS line")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_lists_are_read_like_taskset_writes_them() {
        assert_eq!(parse_core_list("1\n").unwrap(), vec![1]);
        assert_eq!(parse_core_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_core_list("x").is_err());
    }

    #[test]
    fn this_process_has_times_and_cores() {
        assert!(process_ticks("self").is_ok());
        assert!(!allowed_cores("self").unwrap().is_empty());
        assert!(!core_ticks().unwrap().is_empty());
    }

    #[test]
    fn a_process_tree_counts_its_children() {
        let stat = parse_stat("42 (a (b) c) S 7 1 1 0 -1 0 0 0 0 0 11 12 13 14 20 0").unwrap();
        assert_eq!(
            (stat.parent, stat.ticks, stat.ended_children_ticks),
            (7, 23, 27)
        );
        // A child that burns CPU and is still running counts towards this process's tree.
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 5",
            ])
            .spawn()
            .unwrap();
        let me = std::process::id();
        let mut seen = 0;
        for _ in 0..500 {
            // This process's own time first: read after the tree's, it could be a tick
            // ahead of what the tree counted.
            let own = process_ticks("self").unwrap();
            seen = tree_ticks(&[me]).unwrap().saturating_sub(own);
            if seen > 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(seen > 0, "the child's CPU time was not counted");
        assert!(tree_ticks(&[u32::MAX]).is_err());
    }
}
