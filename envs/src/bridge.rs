//! Starting a Python bridge (`envs/python/serve-*.sh`) as a child process: in a process group
//! of its own, so that killing it also kills the JVMs it runs, and read its endpoint from the
//! `listening on HOST:PORT` line it prints.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running bridge; killed (with its whole process group) when dropped.
#[derive(Debug)]
pub struct BridgeProcess {
    child: Child,
    /// `http://HOST:PORT` of its env.proto server.
    pub endpoint: String,
}

impl BridgeProcess {
    /// Runs `bash <script> --listen 127.0.0.1:0 --log-level WARNING` and waits up to `wait`
    /// for its address (a first run builds the bridge's venv from PyPI, which takes minutes).
    pub fn start(script: &Path, wait: Duration) -> std::io::Result<Self> {
        let mut child = Command::new("bash")
            .arg(script)
            .args(["--listen", "127.0.0.1:0", "--log-level", "WARNING"])
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    tx.send(addr.trim().to_string()).ok();
                }
            }
        });
        let mut bridge = Self {
            child,
            endpoint: String::new(),
        };
        match rx.recv_timeout(wait) {
            Ok(addr) => {
                bridge.endpoint = format!("http://{addr}");
                Ok(bridge)
            }
            Err(_) => Err(std::io::Error::other(format!(
                "{} did not report its address within {wait:?}",
                script.display()
            ))),
        }
    }

    /// SIGKILL to the whole process group: no goodbye, as when a machine loses the process.
    pub fn kill_9(&mut self) {
        let group = format!("-{}", self.child.id());
        Command::new("kill")
            .args(["-9", "--", &group])
            .status()
            .ok();
        self.child.wait().ok();
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}
