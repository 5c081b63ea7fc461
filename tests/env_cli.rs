//! `empo2 env serve` and `empo2 env play` as real processes, and a server killed mid-episode.
//!
//! 1. start `empo2 env serve` on a free port
//! 2. `empo2 env play --gold` plays a gold path through it to the full score
//! 3. `empo2 env play` reads typed actions, corrects them to valid ones, and stops on `:quit`
//! 4. kill -9 the server mid-episode: the client reports it unreachable
//! 5. restart it on the same port: the same client starts new episodes; the old session is gone

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use envs::{EnvClient, EnvError, ResetSpec};

fn empo2(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_empo2"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start empo2");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "empo2 {args:?} failed");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn play_a_served_world_from_the_terminal() {
    let server = support::spawn(&["env", "serve", "--listen", "127.0.0.1:0"], &[]);
    let endpoint = format!("http://{}", server.addr);
    eprintln!("1. serving on {endpoint}");

    let gold = empo2(
        &[
            "env",
            "play",
            "--endpoint",
            &endpoint,
            "--task",
            "fetch-and-place",
            "--variation",
            "5",
            "--gold",
        ],
        "",
    );
    assert!(gold.contains("Episode over: score 100, solved."), "{gold}");
    eprintln!("2. gold path played to 100");

    let typed = empo2(
        &[
            "env",
            "play",
            "--endpoint",
            &endpoint,
            "--task",
            "find-plant",
            "--variation",
            "210",
        ],
        "look aroun\n:valid\ninventory\n:quit\n",
    );
    assert!(
        typed.contains("Task: Your task is to find a plant."),
        "{typed}"
    );
    assert!(typed.contains("(→ look around)"), "{typed}");
    assert!(typed.contains("Your inventory is empty."), "{typed}");
    assert!(typed.contains("Stopped."), "{typed}");
    eprintln!("3. typed actions corrected and played");

    let listing = empo2(&["env", "play", "--endpoint", &endpoint], "");
    assert!(
        listing.contains("power-component") && listing.contains("train  200, test  100"),
        "{listing}"
    );
}

#[test]
fn a_server_killed_mid_episode_is_reported_and_a_restart_serves_again() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = support::spawn(&["env", "serve", "--listen", "127.0.0.1:0"], &[]);
    let addr = server.addr;
    let spec = ResetSpec {
        task: "power-component".into(),
        variation: 3,
        ..ResetSpec::default()
    };
    let mut client = runtime
        .block_on(EnvClient::connect(&addr.to_string()))
        .unwrap();
    let session = runtime.block_on(client.reset(&spec)).unwrap().session;
    runtime
        .block_on(client.step(&session, "look around"))
        .unwrap();
    support::kill_9(server);
    eprintln!("4. killed the server mid-episode");

    let err = runtime
        .block_on(client.step(&session, "look around"))
        .unwrap_err();
    assert!(matches!(err, EnvError::Unavailable { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&addr.to_string()),
        "names the server: {err}"
    );

    let listen = addr.to_string();
    let _restarted = support::spawn(&["env", "serve", "--listen", &listen], &[]);
    let err = runtime
        .block_on(client.step(&session, "look around"))
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
    let again = runtime.block_on(client.reset(&spec)).unwrap();
    assert!(!again.observation.valid_actions.is_empty());
    eprintln!("5. restarted on {listen}: new episodes start, the old session is gone");
}
