//! Running the driver executable: one call is one process, bounded in time
//! and in what is read from it.
//!
//! Each call runs `<driver> <op> <json>` in its own process group, with
//! stdin from `/dev/null`. stdout (the reply) is read up to
//! [`Limits::stdout`] bytes: a driver that writes more is killed. stderr is
//! drained concurrently (so a chatty driver never blocks on a full pipe) and
//! only its last [`Limits::stderr`] bytes are kept, for logs and events.
//! When the deadline passes, the whole process group gets `SIGKILL`; when the
//! driver exits, whatever it left running in its group is killed too, so a
//! background child holding the pipes cannot stall the provisioner. Judging
//! the result ([`classify`]) is a pure function of what was observed.
//!
//! The driver does not inherit the provisioner's environment (which holds
//! its configuration, and in a pod the Service-discovery variables and
//! whatever else the operator put there): it gets only the variables named
//! in [`DEFAULT_ENV_ALLOW`] plus those the operator adds with
//! `--driver-env` ([`allowed_env`]; docs/security.md, hole 7).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::{access, AccessFlags, Pid};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::time::Instant;

use crate::protocol::{self, parse_reply, BadReply, Reply, Status};

/// Byte limits of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of stdout accepted; more kills the driver.
    pub stdout: usize,
    /// Bytes of stderr kept (the end of it).
    pub stderr: usize,
    /// Bytes of stderr quoted in an error message (the end of it).
    pub stderr_in_message: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            stdout: 64 * 1024,
            stderr: 16 * 1024,
            stderr_in_message: 300,
        }
    }
}

/// Why the driver cannot be used at all (checked at start-up).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Nothing at the path.
    #[error("driver {0} does not exist: set --driver (FLEX_DRIVER) to the driver executable")]
    Missing(PathBuf),
    /// The path cannot be examined.
    #[error("cannot examine driver {path}: {source}")]
    Stat {
        /// The path.
        path: PathBuf,
        /// Why the driver file could not be examined.
        #[source]
        source: std::io::Error,
    },
    /// A directory, socket, ...
    #[error("driver {0} is not a regular file: --driver must name the executable itself")]
    NotAFile(PathBuf),
    /// No execute permission for this process.
    #[error(
        "driver {0} is not executable by this process: chmod +x it \
         (from a ConfigMap, mount it with defaultMode: 0555)"
    )]
    NotExecutable(PathBuf),
}

/// Make `path` absolute (without resolving symlinks: a ConfigMap's file is a
/// symlink that moves on update) and check it names an executable file.
pub fn check_executable(path: &Path) -> Result<PathBuf, CheckError> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|source| CheckError::Stat {
                path: path.to_path_buf(),
                source,
            })?
            .join(path)
    };
    let meta = match std::fs::metadata(&abs) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(CheckError::Missing(abs)),
        Err(source) => return Err(CheckError::Stat { path: abs, source }),
    };
    if !meta.is_file() {
        return Err(CheckError::NotAFile(abs));
    }
    if access(&abs, AccessFlags::X_OK).is_err() {
        return Err(CheckError::NotExecutable(abs));
    }
    Ok(abs)
}

/// How the driver process ended, as observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal (not by us).
    Signal(i32),
}

impl Exit {
    fn from_status(s: ExitStatus) -> Exit {
        match (s.code(), s.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(sig)) => Exit::Signal(sig),
            (None, None) => Exit::Code(-1),
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exited with status {c}"),
            Exit::Signal(s) => write!(f, "was killed by signal {s}"),
        }
    }
}

/// Everything observed about one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// `None` when we killed it (timeout or too much output).
    pub exit: Option<Exit>,
    /// stdout, at most the limit (plus the byte that crossed it).
    pub stdout: Vec<u8>,
    /// Whether stdout went over the limit.
    pub stdout_overflow: bool,
    /// Whether the deadline passed.
    pub timed_out: bool,
    /// The kept end of stderr.
    pub stderr: Vec<u8>,
}

/// What went wrong in a call, one variant per distinct outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The executable could not be started.
    Spawn(String),
    /// The deadline passed; the process group was killed.
    Timeout(Duration),
    /// stdout went over the limit; the process group was killed.
    OutputTooLarge(usize),
    /// Non-zero exit (or a signal) without a usable Failure reply.
    Exit {
        /// How it ended.
        exit: Exit,
        /// The status it printed anyway, if any (e.g. "Success").
        printed: Option<Status>,
        /// The start of stdout.
        stdout: String,
    },
    /// Exit 0, but stdout is not a reply.
    BadOutput {
        /// What is wrong.
        reason: BadReply,
        /// The start of stdout.
        stdout: String,
    },
    /// The driver replied "Failure".
    Failed {
        /// Its message.
        message: String,
        /// Its exit code (drivers often exit 1 with a Failure reply).
        code: i32,
    },
    /// The driver replied "Not supported".
    NotSupported(String),
}

/// A failed call: the outcome, the operation, and the end of stderr.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct CallError {
    /// `provision` or `delete`.
    pub op: String,
    /// The outcome.
    pub failure: Failure,
    /// The end of stderr, for the message (bounded).
    pub stderr: String,
}

impl CallError {
    fn render(&self) -> String {
        let op = &self.op;
        let mut s = match &self.failure {
            Failure::Spawn(e) => format!("cannot run the driver for `{op}`: {e}"),
            Failure::Timeout(d) => format!(
                "driver `{op}` timed out after {d:?} and was killed with its process group; \
                 it is called again with the same PV name, so it must finish or undo partial \
                 work then; raise --driver-timeout if the backend is only slow"
            ),
            Failure::OutputTooLarge(limit) => format!(
                "driver `{op}` wrote more than {limit} bytes to stdout and was killed; \
                 print one small JSON reply on stdout and logs on stderr"
            ),
            Failure::Exit {
                exit,
                printed: Some(st),
                ..
            } => format!(
                "driver `{op}` {exit} but replied {:?}; a non-zero exit counts as failed",
                st.as_str()
            ),
            Failure::Exit {
                exit,
                printed: None,
                stdout,
            } => format!(
                "driver `{op}` {exit} without a JSON reply (stdout: {})",
                quoted(stdout)
            ),
            Failure::BadOutput { reason, stdout } => format!(
                "driver `{op}` printed an invalid reply: {reason}; expected one JSON object \
                 like {{\"status\": \"Success\"}} on stdout (stdout: {})",
                quoted(stdout)
            ),
            Failure::Failed { message, code } => {
                let m = if message.is_empty() {
                    "(no message)"
                } else {
                    message
                };
                format!("driver `{op}` replied Failure (exit status {code}): {m}")
            }
            Failure::NotSupported(message) => {
                let mut s = format!("driver does not support `{op}` (replied \"Not supported\")");
                if !message.is_empty() {
                    s.push_str(": ");
                    s.push_str(message);
                }
                s
            }
        };
        if !self.stderr.is_empty() {
            s.push_str("; driver stderr: ");
            s.push_str(&self.stderr);
        }
        s
    }
}

fn quoted(s: &str) -> String {
    if s.is_empty() {
        "empty".to_string()
    } else {
        format!("{s:?}")
    }
}

/// Judge a call from what was observed (pure).
pub fn classify(o: &Observed, timeout: Duration, limits: &Limits) -> Result<Reply, Failure> {
    if o.timed_out {
        return Err(Failure::Timeout(timeout));
    }
    if o.stdout_overflow {
        return Err(Failure::OutputTooLarge(limits.stdout));
    }
    let stdout = || protocol::head(&o.stdout, 200);
    let parsed = parse_reply(&o.stdout);
    match (o.exit, parsed) {
        (Some(Exit::Code(0)), Ok(r)) => match r.status {
            Status::Success => Ok(r),
            Status::Failure => Err(Failure::Failed {
                message: r.message,
                code: 0,
            }),
            Status::NotSupported => Err(Failure::NotSupported(r.message)),
        },
        (Some(Exit::Code(0)), Err(reason)) => Err(Failure::BadOutput {
            reason,
            stdout: stdout(),
        }),
        (Some(Exit::Code(code)), Ok(r)) if r.status == Status::Failure => Err(Failure::Failed {
            message: r.message,
            code,
        }),
        (Some(Exit::Code(_)), Ok(r)) if r.status == Status::NotSupported => {
            Err(Failure::NotSupported(r.message))
        }
        (Some(exit), Ok(r)) => Err(Failure::Exit {
            exit,
            printed: Some(r.status),
            stdout: stdout(),
        }),
        (Some(exit), Err(_)) => Err(Failure::Exit {
            exit,
            printed: None,
            stdout: stdout(),
        }),
        // Not killed by us, yet no exit status: treat like a crash.
        (None, _) => Err(Failure::Exit {
            exit: Exit::Signal(9),
            printed: None,
            stdout: stdout(),
        }),
    }
}

/// Environment variables a driver gets by default (when the provisioner has
/// them): what a shell script needs to find programs and format text.
pub const DEFAULT_ENV_ALLOW: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// The variables of `source` whose names are in `allow` (pure).
pub fn allowed_env<K, V>(
    source: impl IntoIterator<Item = (K, V)>,
    allow: &[String],
) -> Vec<(OsString, OsString)>
where
    K: Into<OsString>,
    V: Into<OsString>,
{
    source
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .filter(|(k, _)| allow.iter().any(|a| OsStr::new(a) == k))
        .collect()
}

/// A driver executable and how to call it.
#[derive(Clone, Debug)]
pub struct Driver {
    path: PathBuf,
    timeout: Duration,
    limits: Limits,
    env: Vec<(OsString, OsString)>,
}

/// Kills a process group when dropped (also when the call's future is
/// dropped, e.g. at shutdown).
struct Group(Pid);

impl Group {
    fn kill(&self) {
        // ESRCH: the group is gone already.
        let _ = killpg(self.0, Signal::SIGKILL);
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn read_tail(mut r: impl AsyncRead + Unpin, keep: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * keep {
                    kept.drain(..kept.len() - keep);
                }
            }
        }
    }
    if kept.len() > keep {
        kept.drain(..kept.len() - keep);
    }
    kept
}

impl Driver {
    /// A driver at `path` (see [`check_executable`]) with a per-call
    /// timeout, getting [`DEFAULT_ENV_ALLOW`] of this process's environment.
    pub fn new(path: PathBuf, timeout: Duration, limits: Limits) -> Self {
        let allow: Vec<String> = DEFAULT_ENV_ALLOW.iter().map(|s| s.to_string()).collect();
        Driver {
            path,
            timeout,
            limits,
            env: allowed_env(std::env::vars_os(), &allow),
        }
    }

    /// Replaces the driver's environment: exactly `env`, nothing inherited.
    pub fn with_env(mut self, env: Vec<(OsString, OsString)>) -> Self {
        self.env = env;
        self
    }

    /// The executable.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `<driver> <op> <json of request>` and judge the reply. `pv` names
    /// the volume in logs.
    pub async fn call(
        &self,
        op: &str,
        pv: &str,
        request: &BTreeMap<String, String>,
    ) -> Result<Reply, CallError> {
        let json = serde_json::to_string(request).expect("a map of strings serializes");
        let started = Instant::now();
        let observed = self.run(op, &json).await;
        let elapsed = started.elapsed();
        let (observed, result) = match observed {
            Ok(o) => {
                let r = classify(&o, self.timeout, &self.limits);
                (Some(o), r)
            }
            Err(e) => (
                None,
                Err(Failure::Spawn(format!("{}: {e}", self.path.display()))),
            ),
        };
        let stderr_full = observed
            .as_ref()
            .map(|o| protocol::tail(&o.stderr, self.limits.stderr))
            .unwrap_or_default();
        match &result {
            Ok(reply) => tracing::info!(
                op,
                pv,
                ?elapsed,
                message = reply.message,
                stderr = stderr_full,
                "driver call succeeded"
            ),
            Err(f) => tracing::warn!(
                op,
                pv,
                ?elapsed,
                outcome = ?f,
                stderr = stderr_full,
                "driver call failed"
            ),
        }
        result.map_err(|failure| CallError {
            op: op.to_string(),
            failure,
            stderr: observed
                .map(|o| protocol::tail(&o.stderr, self.limits.stderr_in_message))
                .unwrap_or_default(),
        })
    }

    async fn run(&self, op: &str, json: &str) -> std::io::Result<Observed> {
        let mut cmd = Command::new(&self.path);
        cmd.env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg(op)
            .arg(json)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = external_storage::process::spawn(&mut cmd).await?;
        let pid = child.id().expect("a just-spawned child has a pid");
        let group = Group(Pid::from_raw(pid as i32));
        let deadline = Instant::now() + self.timeout;
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let keep = self.limits.stderr;
        let stderr_task = tokio::spawn(read_tail(stderr, keep));

        let limit = self.limits.stdout;
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        let mut out_open = true;
        let mut exit = None;
        let mut overflow = false;
        let mut timed_out = false;
        while exit.is_none() || out_open {
            tokio::select! {
                s = child.wait(), if exit.is_none() => {
                    exit = Some(Exit::from_status(s?));
                    // Leftovers in its group would hold our pipes open.
                    group.kill();
                }
                n = stdout.read(&mut buf), if out_open => match n {
                    Ok(0) | Err(_) => out_open = false,
                    Ok(n) => {
                        out.extend_from_slice(&buf[..n]);
                        if out.len() > limit {
                            overflow = true;
                            break;
                        }
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    // Exited, but a process that left the group keeps the
                    // pipe: take what was printed. Otherwise: timeout.
                    timed_out = exit.is_none();
                    break;
                }
            }
        }
        group.kill();
        if exit.is_none() {
            // Reap it; SIGKILL makes this quick.
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
        drop(stdout);
        let stderr = match tokio::time::timeout(Duration::from_secs(1), stderr_task).await {
            Ok(Ok(v)) => v,
            _ => Vec::new(),
        };
        let exit = if overflow || timed_out { None } else { exit };
        Ok(Observed {
            exit,
            stdout: out,
            stdout_overflow: overflow,
            timed_out,
            stderr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(exit: Option<Exit>, stdout: &str) -> Observed {
        Observed {
            exit,
            stdout: stdout.as_bytes().to_vec(),
            stdout_overflow: false,
            timed_out: false,
            stderr: Vec::new(),
        }
    }

    const T: Duration = Duration::from_secs(2);

    fn c(o: &Observed) -> Result<Reply, Failure> {
        classify(o, T, &Limits::default())
    }

    #[test]
    fn success_needs_exit_zero() {
        let ok = r#"{"status":"Success","options":{"a":"b"}}"#;
        assert_eq!(c(&obs(Some(Exit::Code(0)), ok)).unwrap().options["a"], "b");
        assert_eq!(
            c(&obs(Some(Exit::Code(2)), ok)).unwrap_err(),
            Failure::Exit {
                exit: Exit::Code(2),
                printed: Some(Status::Success),
                stdout: ok.into()
            }
        );
    }

    #[test]
    fn failure_replies_count_with_any_exit_code() {
        let f = r#"{"status":"Failure","message":"full"}"#;
        for code in [0, 1] {
            assert_eq!(
                c(&obs(Some(Exit::Code(code)), f)).unwrap_err(),
                Failure::Failed {
                    message: "full".into(),
                    code
                }
            );
        }
        let ns = r#"{"status":"Not supported"}"#;
        for code in [0, 1] {
            assert_eq!(
                c(&obs(Some(Exit::Code(code)), ns)).unwrap_err(),
                Failure::NotSupported(String::new())
            );
        }
    }

    #[test]
    fn garbage_is_bad_output_with_exit_zero_and_an_exit_failure_otherwise() {
        assert!(matches!(
            c(&obs(Some(Exit::Code(0)), "hello")).unwrap_err(),
            Failure::BadOutput { reason: BadReply::NotJson(_), stdout } if stdout == "hello"
        ));
        assert!(matches!(
            c(&obs(Some(Exit::Code(0)), "")).unwrap_err(),
            Failure::BadOutput {
                reason: BadReply::Empty,
                ..
            }
        ));
        assert_eq!(
            c(&obs(Some(Exit::Code(3)), "")).unwrap_err(),
            Failure::Exit {
                exit: Exit::Code(3),
                printed: None,
                stdout: String::new()
            }
        );
        assert!(matches!(
            c(&obs(Some(Exit::Signal(11)), "x")).unwrap_err(),
            Failure::Exit {
                exit: Exit::Signal(11),
                ..
            }
        ));
    }

    #[test]
    fn timeout_and_overflow_win() {
        let mut o = obs(None, r#"{"status":"Success"}"#);
        o.timed_out = true;
        assert_eq!(c(&o).unwrap_err(), Failure::Timeout(T));
        let mut o = obs(None, "xxxx");
        o.stdout_overflow = true;
        assert_eq!(c(&o).unwrap_err(), Failure::OutputTooLarge(64 * 1024));
    }

    #[test]
    fn messages_are_distinct_and_carry_stderr() {
        let e = |failure| CallError {
            op: "provision".into(),
            failure,
            stderr: "disk on fire".into(),
        };
        let msgs: Vec<String> = [
            Failure::Spawn("/d: No such file".into()),
            Failure::Timeout(T),
            Failure::OutputTooLarge(10),
            Failure::Exit {
                exit: Exit::Code(3),
                printed: None,
                stdout: String::new(),
            },
            Failure::BadOutput {
                reason: BadReply::Empty,
                stdout: String::new(),
            },
            Failure::Failed {
                message: "full".into(),
                code: 1,
            },
            Failure::NotSupported("no".into()),
        ]
        .into_iter()
        .map(|f| e(f).to_string())
        .collect();
        let expect = [
            "cannot run the driver",
            "timed out after 2s",
            "more than 10 bytes",
            "exited with status 3 without a JSON reply",
            "printed an invalid reply: stdout is empty",
            "replied Failure (exit status 1): full",
            "does not support `provision`",
        ];
        for (m, x) in msgs.iter().zip(expect) {
            assert!(m.contains(x), "{m:?} should contain {x:?}");
            assert!(m.ends_with("; driver stderr: disk on fire"), "{m}");
        }
    }

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn start_up_check_names_the_problem() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope");
        assert!(matches!(
            check_executable(&missing),
            Err(CheckError::Missing(_))
        ));
        assert!(matches!(
            check_executable(tmp.path()),
            Err(CheckError::NotAFile(_))
        ));
        let ok = script(tmp.path(), "d", "exit 0");
        assert_eq!(check_executable(&ok).unwrap(), ok);
        let plain = tmp.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        // root may execute nothing without an x bit either
        let e = check_executable(&plain).unwrap_err();
        assert!(matches!(e, CheckError::NotExecutable(_)), "{e}");
        assert!(e.to_string().contains("chmod +x"), "{e}");
    }

    #[tokio::test]
    async fn a_real_call_passes_op_and_json_and_reads_the_reply() {
        let tmp = tempfile::tempdir().unwrap();
        let d = script(
            tmp.path(),
            "d",
            r#"echo "log: $1" >&2; printf '{"status":"Success","options":{"arg":"%s"}}' "$(printf %s "$2" | tr -d '"{}')""#,
        );
        let drv = Driver::new(d, Duration::from_secs(10), Limits::default());
        let req = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let r = drv.call("provision", "pv", &req).await.unwrap();
        assert_eq!(r.options["arg"], "k:v");
    }

    #[test]
    fn only_allowed_variables_pass() {
        let allow = vec!["PATH".to_string(), "EXTRA".to_string()];
        let got = allowed_env(
            [
                ("PATH", "/bin"),
                ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
                ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
                ("EXTRA", "x"),
                ("PATHX", "no"),
            ],
            &allow,
        );
        assert_eq!(
            got,
            [
                (OsString::from("PATH"), OsString::from("/bin")),
                (OsString::from("EXTRA"), OsString::from("x"))
            ]
        );
    }

    /// Hole 7 of docs/security.md: the driver sees only the allowed
    /// variables, not the provisioner's whole environment.
    #[tokio::test]
    async fn the_driver_gets_only_the_allowed_environment() {
        let tmp = tempfile::tempdir().unwrap();
        let dump = tmp.path().join("env");
        let d = script(
            tmp.path(),
            "d",
            &format!(
                "/usr/bin/env > {}; printf '{{\"status\":\"Success\"}}'",
                dump.display()
            ),
        );
        let allow: Vec<String> = DEFAULT_ENV_ALLOW.iter().map(|s| s.to_string()).collect();
        let env = allowed_env(
            [
                ("PATH", "/usr/bin:/bin"),
                ("LANG", "C.UTF-8"),
                ("PROVISIONER_TOKEN", "s3cr3t"),
                ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
            ],
            &allow,
        );
        let drv = Driver::new(d, Duration::from_secs(10), Limits::default()).with_env(env);
        drv.call("provision", "pv", &BTreeMap::new()).await.unwrap();
        let seen = std::fs::read_to_string(&dump).unwrap();
        assert!(
            seen.contains("PATH=/usr/bin:/bin") && seen.contains("LANG=C.UTF-8"),
            "{seen}"
        );
        assert!(
            !seen.contains("s3cr3t") && !seen.contains("KUBERNETES"),
            "{seen}"
        );
        // The default constructor inherits nothing outside the allow-list
        // either: this test process's own variables (e.g. CARGO_*) stay out.
        let d2 = script(
            tmp.path(),
            "d2",
            &format!(
                "/usr/bin/env > {}; printf '{{\"status\":\"Success\"}}'",
                dump.display()
            ),
        );
        Driver::new(d2, Duration::from_secs(10), Limits::default())
            .call("provision", "pv", &BTreeMap::new())
            .await
            .unwrap();
        let seen = std::fs::read_to_string(&dump).unwrap();
        assert!(!seen.contains("CARGO"), "{seen}");
        for line in seen.lines() {
            let name = line.split('=').next().unwrap();
            // sh itself may set PWD, SHLVL and _.
            assert!(
                DEFAULT_ENV_ALLOW.contains(&name) || ["PWD", "SHLVL", "_"].contains(&name),
                "{line}"
            );
        }
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group_quickly() {
        let tmp = tempfile::tempdir().unwrap();
        let pidfile = tmp.path().join("pid");
        let d = script(
            tmp.path(),
            "d",
            &format!(
                "sleep 60 & echo $! > {}; echo waiting >&2; wait",
                pidfile.display()
            ),
        );
        let drv = Driver::new(d, Duration::from_millis(500), Limits::default());
        let started = std::time::Instant::now();
        let e = drv
            .call("provision", "pv", &BTreeMap::new())
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(e.failure, Failure::Timeout(Duration::from_millis(500)));
        assert_eq!(e.stderr, "waiting");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(dies(pid), "the grandchild {pid} must be killed");
    }

    #[tokio::test]
    async fn a_dropped_call_kills_the_group() {
        let tmp = tempfile::tempdir().unwrap();
        let pidfile = tmp.path().join("pid");
        let d = script(
            tmp.path(),
            "d",
            &format!("sleep 60 & echo $! > {}; wait", pidfile.display()),
        );
        let drv = Driver::new(d, Duration::from_secs(60), Limits::default());
        let req = BTreeMap::new();
        // Boxed so that `drop` really drops the future.
        let mut call = Box::pin(drv.call("provision", "pv", &req));
        let started = async {
            loop {
                let s = std::fs::read_to_string(&pidfile).unwrap_or_default();
                if s.ends_with('\n') {
                    return s.trim().parse::<i32>().unwrap();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let pid = tokio::select! {
            r = &mut call => panic!("the call ended on its own: {r:?}"),
            pid = started => pid,
        };
        drop(call);
        assert!(dies(pid), "the grandchild {pid} must be killed");
    }

    /// SIGKILL is asynchronous: give the process a moment to go.
    fn dies(pid: i32) -> bool {
        (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            !alive(pid)
        })
    }

    fn alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => false,
            // "pid (comm) S ..." — zombies are dead
            Ok(s) => !s
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z'),
        }
    }

    #[tokio::test]
    async fn a_background_child_holding_stdout_does_not_stall_the_call() {
        let tmp = tempfile::tempdir().unwrap();
        let d = script(
            tmp.path(),
            "d",
            r#"sleep 60 & echo '{"status":"Success"}'; exit 0"#,
        );
        let drv = Driver::new(d, Duration::from_secs(20), Limits::default());
        let started = std::time::Instant::now();
        drv.call("delete", "pv", &BTreeMap::new()).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn endless_output_is_cut_and_stderr_is_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let d = script(tmp.path(), "d", "yes xxxxxxxx >&2 & yes");
        let limits = Limits {
            stdout: 1000,
            stderr: 100,
            stderr_in_message: 20,
        };
        let drv = Driver::new(d, Duration::from_secs(20), limits);
        let e = drv
            .call("provision", "pv", &BTreeMap::new())
            .await
            .unwrap_err();
        assert_eq!(e.failure, Failure::OutputTooLarge(1000));
        assert!(e.stderr.chars().count() <= 21, "{:?}", e.stderr);
    }

    #[tokio::test]
    async fn a_vanished_driver_is_a_spawn_failure() {
        let drv = Driver::new(
            PathBuf::from("/nonexistent/driver"),
            Duration::from_secs(1),
            Limits::default(),
        );
        let e = drv
            .call("delete", "pv", &BTreeMap::new())
            .await
            .unwrap_err();
        assert!(matches!(e.failure, Failure::Spawn(_)), "{e}");
        assert!(e.to_string().contains("/nonexistent/driver"), "{e}");
    }
}
