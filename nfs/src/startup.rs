//! When to give up on a child that has not answered yet after a start.
//!
//! NFS-Ganesha reads every export of its config before it listens, and
//! that costs more than linear time in the number of exports (measured on
//! Debian 12's Ganesha: 1,000 exports 0.8 s, 2,000 3.1 s, 4,000 15.5 s;
//! docs/performance.md). A fixed start deadline therefore turned a server
//! with many exports into a restart loop that never came back: killed at
//! the deadline, started again, killed again. The rule here waits as long
//! as the child keeps using CPU (it is working through its config), and
//! gives up only when it has been idle for the start timeout without
//! answering (hung), or at a hard ceiling.

use std::time::{Duration, Instant};

/// The ceiling on any one start, however busy the child: a child spinning
/// without ever answering is restarted after this long.
pub const MAX_START: Duration = Duration::from_secs(30 * 60);

/// The start of one child: its CPU time as last seen, and since when it
/// has not grown.
#[derive(Debug)]
pub struct StartWatch {
    started: Instant,
    idle_timeout: Duration,
    cpu_ticks: Option<u64>,
    idle_since: Instant,
}

/// The verdict after one failed check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Still starting: check again.
    Wait,
    /// Not answering and not working for the idle timeout: give up.
    Idle,
    /// Not answering after [`MAX_START`], though busy: give up.
    TooLong,
}

impl StartWatch {
    /// Starts watching at `now`; `idle_timeout` is how long the child may
    /// go without CPU progress before it counts as hung.
    pub fn new(now: Instant, idle_timeout: Duration) -> Self {
        Self {
            started: now,
            idle_timeout,
            cpu_ticks: None,
            idle_since: now,
        }
    }

    /// Takes the child's CPU time at `now` (`None`: unreadable, which
    /// counts as no progress, so the plain idle timeout applies).
    pub fn observe(&mut self, now: Instant, cpu_ticks: Option<u64>) -> Verdict {
        if let (Some(new), Some(old)) = (cpu_ticks, self.cpu_ticks) {
            if new > old {
                self.idle_since = now;
            }
        }
        if cpu_ticks.is_some() {
            self.cpu_ticks = cpu_ticks;
        }
        if now.duration_since(self.started) >= MAX_START {
            Verdict::TooLong
        } else if now.duration_since(self.idle_since) >= self.idle_timeout {
            Verdict::Idle
        } else {
            Verdict::Wait
        }
    }
}

/// User plus system CPU time of process `pid`, in clock ticks, from
/// `/proc/<pid>/stat` (fields 14 and 15; the command name in parentheses
/// may hold spaces, so fields are counted after its closing one).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_busy_child_is_waited_for_past_the_idle_timeout() {
        let t0 = Instant::now();
        let mut w = StartWatch::new(t0, 60 * S);
        for i in 0..10u64 {
            // 100 s in, still using CPU at every look.
            assert_eq!(
                w.observe(t0 + 10 * i as u32 * S, Some(i * 100)),
                Verdict::Wait
            );
        }
        assert_eq!(w.observe(t0 + 100 * S, Some(2000)), Verdict::Wait);
    }

    #[test]
    fn an_idle_child_is_given_up_after_the_idle_timeout() {
        let t0 = Instant::now();
        let mut w = StartWatch::new(t0, 60 * S);
        assert_eq!(w.observe(t0 + 5 * S, Some(50)), Verdict::Wait);
        assert_eq!(w.observe(t0 + 10 * S, Some(80)), Verdict::Wait);
        // No tick since 10 s: idle from there.
        assert_eq!(w.observe(t0 + 69 * S, Some(80)), Verdict::Wait);
        assert_eq!(w.observe(t0 + 70 * S, Some(80)), Verdict::Idle);
    }

    #[test]
    fn unreadable_cpu_time_falls_back_to_the_plain_timeout() {
        let t0 = Instant::now();
        let mut w = StartWatch::new(t0, 60 * S);
        assert_eq!(w.observe(t0 + 59 * S, None), Verdict::Wait);
        assert_eq!(w.observe(t0 + 60 * S, None), Verdict::Idle);
    }

    #[test]
    fn a_child_busy_forever_is_given_up_at_the_ceiling() {
        let t0 = Instant::now();
        let mut w = StartWatch::new(t0, 60 * S);
        let mut ticks = 0;
        let mut at = t0;
        while at.duration_since(t0) < MAX_START {
            ticks += 100;
            assert_eq!(w.observe(at, Some(ticks)), Verdict::Wait);
            at += 30 * S;
        }
        assert_eq!(w.observe(at, Some(ticks + 100)), Verdict::TooLong);
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (ganesha nfsd) R 1 4242 4242 0 -1 4194560 1 0 0 0 1234 56 0 0 20 0 12";
        assert_eq!(parse_stat(stat), Some(1290));
        assert_eq!(parse_stat("garbage"), None);
        assert!(cpu_ticks(std::process::id()).is_some());
    }
}
