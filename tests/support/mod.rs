//! Helpers for tests that run the real `empo2` binary as child processes.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `empo2` child; killed (SIGKILL) when dropped.
pub struct Service {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Starts `empo2 <args>` and waits for its "… listening on ADDR" line on stdout.
pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Service {
    let mut child = Command::new(env!("CARGO_BIN_EXE_empo2"))
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start empo2");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            if let Some(addr) = line.split(" listening on ").nth(1) {
                tx.send(addr.trim().parse::<SocketAddr>().expect("address"))
                    .ok();
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("empo2 did not report its address within 60 s");
    Service { child, addr }
}

/// `empo2 memory` on a free loopback port with the model-free embedder, storing in `dir`.
pub fn spawn_memory(dir: &Path) -> Service {
    spawn_memory_with(dir, &[])
}

/// [`spawn_memory`] with the variables `envs` set (e.g. another backend).
pub fn spawn_memory_with(dir: &Path, envs: &[(&str, &str)]) -> Service {
    spawn(
        &[
            "memory",
            "--listen",
            "127.0.0.1:0",
            "--embedder",
            "hash",
            "--data-dir",
            dir.to_str().expect("utf-8 path"),
        ],
        envs,
    )
}

/// Kills a service with SIGKILL (no chance to flush or clean up) and reaps it.
pub fn kill_9(mut service: Service) {
    service.child.kill().expect("SIGKILL");
    service.child.wait().expect("reap");
}

/// A running `empo2` child that prints no address (an actor); killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// Starts `empo2 <args>` with `envs` set, without waiting for anything.
pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Process {
    let child = Command::new(env!("CARGO_BIN_EXE_empo2"))
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start empo2");
    Process(child)
}

/// The body of `GET /metrics` from a Prometheus endpoint at `addr`.
pub fn scrape(addr: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr)?;
    socket.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut body = String::new();
    socket.read_to_string(&mut body)?;
    Ok(body)
}

/// A loopback port that was free a moment ago (for a service restarted on the same port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Waits up to `timeout` for `child` to exit; its exit status, or `None` on timeout.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Asks the learner behind `client` for a group, as actor `test`.
pub async fn lease(
    client: &mut empo2_proto::learner::v1::learner_client::LearnerClient<tonic::transport::Channel>,
) -> empo2_proto::learner::v1::LeaseResponse {
    let request = empo2_proto::learner::v1::LeaseRequest {
        actor_id: "test".into(),
        policy_version: 0,
    };
    client.lease(request).await.unwrap().into_inner()
}

/// Runs `empo2 train` on the configuration `toml` in `dir` (output under `dir/run`); asserts
/// it succeeded and returns its stdout (the evaluation table) and the run directory.
pub fn train(dir: &Path, toml: &str) -> (String, std::path::PathBuf) {
    let config = dir.join("train.toml");
    std::fs::write(&config, toml).expect("write the config");
    let out = dir.join("run");
    let output = Command::new(env!("CARGO_BIN_EXE_empo2"))
        .args(["train", "--config", config.to_str().expect("utf-8 path")])
        .args(["--out-dir", out.to_str().expect("utf-8 path")])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run empo2 train");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    (stdout, out)
}
