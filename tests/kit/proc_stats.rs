//! What a server process did during a measurement: the store writer's groups (one batch and one
//! fsync each) from its log, and CPU time in total and by thread from `/proc`.
//!
//! The HTTP and delivery benches each had a copy of both, printed differently; the readings are
//! now one type each, and each bench keeps its own way of printing them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The store writer's groups, read from its trace lines `group committed writes=N micros=M` in
/// the server's log between two byte offsets.
pub struct GroupStats {
    /// (writes, commit (apply_batch) + flush (fsync) microseconds) of each group, in log order.
    groups: Vec<(u64, u64)>,
}

impl GroupStats {
    pub fn from_log(log: &Path, from: u64, to: u64) -> GroupStats {
        let bytes = std::fs::read(log).unwrap_or_default();
        let window = &bytes[(from as usize).min(bytes.len())..(to as usize).min(bytes.len())];
        let field = |line: &str, name: &str| -> Option<u64> {
            let at = line.find(name)? + name.len();
            let digits: String = line[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        };
        let groups = String::from_utf8_lossy(window)
            .lines()
            .filter(|l| l.contains("group committed"))
            .filter_map(|l| Some((field(l, "writes=")?, field(l, "micros=")?)))
            .collect();
        GroupStats { groups }
    }

    /// How many groups (fsyncs) were logged.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Writes in all groups.
    pub fn writes(&self) -> u64 {
        self.groups.iter().map(|g| g.0).sum()
    }

    /// Writes per group (per fsync) on average.
    pub fn mean_size(&self) -> f64 {
        self.writes() as f64 / self.groups.len().max(1) as f64
    }

    fn sorted_sizes(&self) -> Vec<u64> {
        let mut sizes: Vec<u64> = self.groups.iter().map(|g| g.0).collect();
        sizes.sort_unstable();
        sizes
    }

    /// One line for a burst of work: groups, writes per group, total commit time and the slowest
    /// group.
    pub fn print_summary(&self) {
        if self.groups.is_empty() {
            println!("  store writer: no groups logged");
            return;
        }
        let writes = self.writes();
        let busy: u64 = self.groups.iter().map(|g| g.1).sum();
        let (big_writes, big_micros) = self.groups.iter().copied().max_by_key(|g| g.1).unwrap();
        let sizes = self.sorted_sizes();
        println!(
            "  store writer: {} groups (one fsync each) for {writes} writes, {:.1} writes/group \
             (median {}, max {}); commit+fsync {:.1} ms in all; slowest group {:.1} ms ({} writes)",
            self.groups.len(),
            writes as f64 / self.groups.len() as f64,
            sizes[sizes.len() / 2],
            sizes[sizes.len() - 1],
            busy as f64 / 1000.0,
            big_micros as f64 / 1000.0,
            big_writes
        );
    }

    /// One line for a steady load of `elapsed`: group size and commit time percentiles, and the
    /// share of the run the writer spent committing.
    pub fn print_rates(&self, elapsed: Duration) {
        if self.groups.is_empty() {
            println!("  writer groups: none logged (is VRM_LOG honoured?)");
            return;
        }
        let sizes = self.sorted_sizes();
        let mut micros: Vec<u64> = self.groups.iter().map(|g| g.1).collect();
        micros.sort_unstable();
        let at = |v: &[u64], q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        let writes = self.writes();
        let busy: u64 = micros.iter().sum();
        println!(
            "  writer groups: {} groups for {writes} writes = {:.1} writes/fsync (p50 {}, p99 {}, max {}); \
             commit+fsync p50 {} µs, p99 {} µs, mean {:.0} µs, {:.0}% of the run",
            sizes.len(),
            self.mean_size(),
            at(&sizes, 0.5),
            at(&sizes, 0.99),
            at(&sizes, 1.0),
            at(&micros, 0.5),
            at(&micros, 0.99),
            busy as f64 / micros.len() as f64,
            busy as f64 / elapsed.as_micros() as f64 * 100.0
        );
    }
}

/// CPU time used so far by a process, in total and by thread name, from `/proc` (clock ticks
/// of 1/100 s, Linux's `USER_HZ`).
pub struct CpuSample {
    /// (user, system) seconds of the whole process.
    total: (f64, f64),
    /// (user, system) seconds by thread name (threads of the same name summed).
    threads: BTreeMap<String, (f64, f64)>,
    /// Seconds on a CPU and seconds runnable but waiting for one, by thread name, from
    /// `/proc/.../schedstat` (nanosecond resolution).
    sched: BTreeMap<String, (f64, f64)>,
}

/// User and system seconds in a `/proc/.../stat` file.
fn stat_seconds(path: &Path) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The fields after the command name (which may hold spaces) start at field 3 (state);
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user / 100.0, system / 100.0))
}

impl CpuSample {
    pub fn of(pid: u32) -> CpuSample {
        let mut threads = BTreeMap::new();
        let mut sched = BTreeMap::new();
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                let dir = task.path();
                let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
                if let Some((user, system)) = stat_seconds(&dir.join("stat")) {
                    let entry: &mut (f64, f64) = threads.entry(name.trim().to_owned()).or_default();
                    entry.0 += user;
                    entry.1 += system;
                }
                let schedstat = std::fs::read_to_string(dir.join("schedstat")).unwrap_or_default();
                let mut fields = schedstat
                    .split_whitespace()
                    .map(|n| n.parse::<f64>().unwrap_or(0.0) / 1e9);
                if let (Some(running), Some(waiting)) = (fields.next(), fields.next()) {
                    let entry: &mut (f64, f64) = sched.entry(name.trim().to_owned()).or_default();
                    entry.0 += running;
                    entry.1 += waiting;
                }
            }
        }
        let stat = PathBuf::from(format!("/proc/{pid}/stat"));
        CpuSample {
            total: stat_seconds(&stat).unwrap_or_default(),
            threads,
            sched,
        }
    }

    /// Seconds used since `before` (user and system) by each thread name that used any, the
    /// busiest first.
    fn by_thread_since(&self, before: &CpuSample) -> Vec<(String, f64)> {
        let mut by_thread: Vec<(String, f64)> = self
            .threads
            .iter()
            .map(|(thread, now)| {
                let then = before.threads.get(thread).copied().unwrap_or_default();
                (thread.clone(), (now.0 - then.0) + (now.1 - then.1))
            })
            .filter(|(_, seconds)| *seconds > 0.0)
            .collect();
        by_thread.sort_by(|a, b| b.1.total_cmp(&a.1));
        by_thread
    }

    /// Prints how thread `name` spent the time since `before`: on a CPU, runnable but waiting
    /// for one, and the rest blocked (for the writer: in fsync, or with nothing queued).
    pub fn print_thread_time(&self, before: &CpuSample, name: &str, elapsed: Duration) {
        let (Some(now), Some(then)) = (self.sched.get(name), before.sched.get(name)) else {
            return;
        };
        let wall = elapsed.as_secs_f64();
        let (running, waiting) = ((now.0 - then.0) / wall, (now.1 - then.1) / wall);
        println!(
            "  {name} thread: on a CPU {:.0}%, runnable but waiting for a CPU {:.0}%, blocked \
             {:.0}% of the run",
            running * 100.0,
            waiting * 100.0,
            (1.0 - running - waiting).max(0.0) * 100.0
        );
    }

    /// Prints the CPU time used since `before`, per request, in total and by thread name.
    /// Returns the CPU time per request in microseconds.
    pub fn print_since(
        &self,
        before: &CpuSample,
        requests: u64,
        elapsed: Duration,
        name: &str,
    ) -> f64 {
        let per = |seconds: f64| seconds * 1e6 / requests.max(1) as f64;
        let (user, system) = (self.total.0 - before.total.0, self.total.1 - before.total.1);
        let threads = self
            .by_thread_since(before)
            .iter()
            .map(|(thread, seconds)| format!("{thread} {:.1}", per(*seconds)))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "  {name} CPU: {:.1} µs per request (user {:.1}, system {:.1}; {:.2} cores busy); \
             by thread: {threads}",
            per(user + system),
            per(user),
            per(system),
            (user + system) / elapsed.as_secs_f64()
        );
        per(user + system)
    }

    /// Prints the CPU time used since `before` over `wall`, in total and by thread name, for a
    /// burst of work rather than a count of requests.
    pub fn print_busy_since(&self, before: &CpuSample, wall: Duration, name: &str) {
        let threads = self
            .by_thread_since(before)
            .iter()
            .map(|(t, s)| format!("{t} {:.2} s", s))
            .collect::<Vec<_>>()
            .join(", ");
        let used = (self.total.0 + self.total.1) - (before.total.0 + before.total.1);
        println!(
            "  {name} CPU over the {:.2} s until every outcome was recorded: {used:.2} s \
             ({:.2} cores busy on average); by thread: {threads}",
            wall.as_secs_f64(),
            used / wall.as_secs_f64()
        );
    }
}
