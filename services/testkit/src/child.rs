//! A child process that never outlives its test.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL) and reaped when dropped, also when the test panics; with
/// the files its output goes to, to read when something fails.
#[derive(Debug)]
pub struct Child {
    inner: std::process::Child,
    logs: Vec<PathBuf>,
}

impl Child {
    /// Starts `cmd` with its standard streams as `cmd` sets them.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
        Ok(Child::from(cmd.spawn()?))
    }

    /// Names a file its output goes to (for [`Child::log`]); several are read in turn.
    #[must_use]
    pub fn with_log(mut self, path: impl Into<PathBuf>) -> Child {
        self.logs.push(path.into());
        self
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.inner.id()
    }

    /// The first of its log files, if it has one.
    pub fn log_path(&self) -> Option<&Path> {
        self.logs.first().map(PathBuf::as_path)
    }

    /// Everything in its log files so far (empty without any).
    pub fn log(&self) -> String {
        self.logs
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }

    /// The last `lines` lines of [`Child::log`].
    pub fn tail(&self, lines: usize) -> String {
        tail(&self.log(), lines)
    }

    /// Its exit status if it has exited (reaping it), `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.inner.try_wait().ok().flatten()
    }

    /// Waits up to `limit` for it to exit: whether it succeeded, and its log. Past `limit` it
    /// is killed, and that is a failure.
    pub fn wait_for_exit(mut self, limit: Duration) -> (bool, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return (status.success(), self.log());
            }
            if Instant::now() > deadline {
                self.kill();
                return (false, format!("killed after {limit:?}\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills it (SIGKILL: no chance to clean up) and reaps it; nothing when it has exited.
    pub fn kill(&mut self) {
        let _ = self.inner.kill();
        let _ = self.inner.wait();
    }
}

impl From<std::process::Child> for Child {
    fn from(inner: std::process::Child) -> Child {
        Child {
            inner,
            logs: Vec::new(),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_child_is_gone_and_a_finished_one_says_how_it_ended() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("sh.log");
        let ok = Child::spawn(
            Command::new("sh")
                .args(["-c", "echo one; echo two; echo three"])
                .stdout(std::fs::File::create(&log).expect("log")),
        )
        .expect("sh runs")
        .with_log(&log);
        assert_eq!(
            ok.wait_for_exit(Duration::from_secs(10)),
            (true, "one\ntwo\nthree\n".to_owned())
        );

        let slow = Child::spawn(Command::new("sleep").arg("60")).expect("sleep runs");
        let (success, out) = slow.wait_for_exit(Duration::from_millis(100));
        assert!(!success);
        assert!(out.starts_with("killed after"), "{out}");

        let mut child = Child::spawn(Command::new("sleep").arg("60")).expect("sleep runs");
        let pid = child.id();
        assert!(child.exited().is_none());
        drop(child);
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "reaped");
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
    }
}
