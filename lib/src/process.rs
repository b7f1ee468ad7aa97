//! Starting the helper programs provisioners run (drivers, cleaner scripts).
//!
//! Linux refuses to execute a file that any process holds open for writing
//! (`ETXTBSY`). A script written just before it runs, by an installer or a
//! test, can be held open for a moment by a child another thread of the
//! writer forked at the wrong time, until that child calls exec. The window
//! is short, so the start is retried a few times before the error counts.

use std::io;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Attempts before an `ETXTBSY` counts (about 0.3 s of waiting in all).
const BUSY_ATTEMPTS: u32 = 7;

/// `cmd.spawn()`, retried with a short, doubling delay while the program's
/// file is busy (`ETXTBSY`); any other error is returned at once.
pub async fn spawn(cmd: &mut Command) -> io::Result<Child> {
    let mut delay = Duration::from_millis(5);
    let mut attempt = 1;
    loop {
        match cmd.spawn() {
            Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy && attempt < BUSY_ATTEMPTS => {
                tracing::debug!(program = ?cmd.as_std().get_program(), attempt, "executable busy, retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// An executable script in `dir`, still open for writing: exec fails
    /// with ETXTBSY until the returned file is closed.
    fn busy_script(dir: &std::path::Path) -> (std::path::PathBuf, std::fs::File) {
        let path = dir.join("script");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"#!/bin/sh\necho ran\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        (path, file)
    }

    #[tokio::test]
    async fn a_file_open_for_writing_is_waited_for_then_runs() {
        let dir = tempfile::tempdir().unwrap();
        let (path, file) = busy_script(dir.path());
        let closer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            drop(file);
        });
        let mut cmd = Command::new(&path);
        cmd.stdout(std::process::Stdio::piped());
        let out = spawn(&mut cmd)
            .await
            .unwrap()
            .wait_with_output()
            .await
            .unwrap();
        closer.await.unwrap();
        assert_eq!(out.stdout, b"ran\n");
    }

    #[tokio::test]
    async fn other_errors_are_returned_at_once() {
        let mut cmd = Command::new("/nonexistent/program");
        let e = spawn(&mut cmd).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn a_file_that_stays_busy_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (path, file) = busy_script(dir.path());
        let e = spawn(&mut Command::new(&path)).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ExecutableFileBusy);
        drop(file);
    }
}
