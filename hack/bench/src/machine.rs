//! What a run was measured on: cores, memory, kernel, commit; and the
//! memory of a process, from `/proc`.

use std::process::Command;

/// The machine and source a run describes.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Online CPUs.
    pub cores: usize,
    /// `MemTotal` in MiB.
    pub memory_mib: u64,
    /// CPU model name.
    pub cpu: String,
    /// `git rev-parse HEAD`, with `-dirty` if the tree has changes.
    pub commit: String,
    /// Cargo profile this binary was built with.
    pub profile: &'static str,
}

impl Machine {
    /// Reads `/proc` and git.
    pub fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(|| "unknown".into(), |s| s.trim().to_string());
        Self {
            cores,
            memory_mib: kib_field(&meminfo, "MemTotal:").unwrap_or(0) / 1024,
            cpu,
            commit: commit(),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        }
    }

    /// One line for the top of a report.
    pub fn line(&self) -> String {
        format!(
            "machine: {} cores ({}), {} MiB RAM; commit {}; profile {}",
            self.cores, self.cpu, self.memory_mib, self.commit, self.profile
        )
    }
}

fn commit() -> String {
    let out = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(head) = out(&["rev-parse", "HEAD"]) else {
        return "unknown (not a git checkout)".into();
    };
    let dirty =
        out(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{head}-dirty")
    } else {
        head
    }
}

/// A `Key:   123 kB` field of a `/proc` file, in KiB.
pub fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Peak resident set size (`VmHWM`) of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&status, "VmHWM:")
}

/// Resident set size now (`VmRSS`) of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&status, "VmRSS:")
}

/// CPU time (`utime + stime` of `/proc/<pid>/stat`) of process `pid`, in
/// seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    ticks(&stat).map(|t| t as f64 / clock_ticks() as f64)
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line, in
/// clock ticks. The command name (field 2) may hold spaces, so fields are
/// counted after its closing parenthesis.
fn ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// `getconf CLK_TCK` (clock ticks per second of `/proc` times), once.
fn clock_ticks() -> u64 {
    static TCK: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_fields() {
        let t = "Name:\tx\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(kib_field(t, "VmHWM:"), Some(12345));
        assert_eq!(kib_field(t, "VmSwap:"), None);
    }

    #[test]
    fn reads_cpu_ticks_after_the_command_name() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 5 0 0";
        assert_eq!(ticks(stat), Some(10));
        assert!(cpu_seconds(std::process::id()).is_some());
    }

    #[test]
    fn own_peak_rss_is_readable() {
        assert!(peak_rss_kib(std::process::id()).unwrap() > 0);
    }
}
