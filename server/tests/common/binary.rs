//! The real `flin-server` binary as a child process, for tests that kill it or limit it.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Running {
    pub child: Child,
    pub addr: String,
}

impl Running {
    /// Once `acks` reaches `target` (within a minute, else the test fails naming `round`),
    /// kills the server with SIGKILL, mid-load, and reaps it.
    pub fn kill_after(&mut self, acks: &std::sync::atomic::AtomicU64, target: u64, round: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while acks.load(std::sync::atomic::Ordering::Relaxed) < target {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: no progress"
            );
            std::thread::yield_now();
        }
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// The next number of a xorshift sequence: a crash test's reproducible kill points.
pub fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// A failing test must not leave its server running.
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on a free port with extra flags, and waits (bounded) for its "ready" log
/// line. SIGXFSZ is ignored in the child, so a file-size limit set later (prlimit) makes writes
/// fail with EFBIG as a full disk would, instead of killing the server.
pub fn start(dir: &std::path::Path, flags: &[&str]) -> Running {
    start_with_env(dir, flags, &[])
}

/// [`start`] with extra environment variables for the server, e.g. `FLIN_FAILPOINT`. The
/// server never inherits `FLIN_FAILPOINT` from the test process.
pub fn start_with_env(dir: &std::path::Path, flags: &[&str], env: &[(&str, &str)]) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flin-server"));
    cmd.args(["--dir", dir.to_str().unwrap(), "--port", "0"])
        .args(["--threads", "2", "--pin-cores", "no", "--log-level", "info"])
        .args(flags)
        .env_remove("FLIN_FAILPOINT")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only an async-signal-safe call between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn flin-server");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent {
                if let Some(rest) = line.split("address=").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
            // Keep draining so the server never blocks on a full pipe.
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("flin-server printed its address");
    Running { child, addr }
}
