#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::*;

/// Reads the server's INFO line, which proves a NATS server (not just any listener) answers.
fn read_info(server: &NatsServer) -> String {
    let stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn free_port_is_bindable() {
    let port = free_port();
    assert_ne!(port, 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
}

#[test]
fn nats_server_starts_with_jetstream_and_accepts_clients() {
    let server = NatsServer::start().unwrap();
    let info = read_info(&server);
    assert!(info.starts_with("INFO "), "{info}");
    assert!(info.contains("\"jetstream\":true"), "{info}");
    assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
    assert!(
        server
            .store_dir()
            .starts_with(server.log_path().parent().unwrap())
    );
    assert!(
        server.log_tail().contains("Server is ready"),
        "{}",
        server.log_tail()
    );
}

#[test]
fn the_shipped_permissions_run_with_a_fresh_nkey_per_user() {
    let server = NatsServer::start_with(NatsOptions::shipped()).unwrap();
    // Authentication is required: the INFO line asks for an nkey signature of its nonce.
    let info = read_info(&server);
    assert!(info.contains("\"auth_required\":true"), "{info}");
    assert!(info.contains("\"nonce\""), "{info}");
    let mut keys = Vec::new();
    for name in SHIPPED_USERS {
        let user = server.user(name).unwrap();
        assert!(user.public_key.starts_with('U'), "{user:?}");
        assert_eq!(user.inbox_prefix, format!("_INBOX_{name}"));
        let seed = std::fs::read_to_string(&user.seed_file).unwrap();
        let pair = nkeys::KeyPair::from_seed(seed.trim()).unwrap();
        assert_eq!(pair.public_key(), user.public_key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&user.seed_file)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{}", user.seed_file.display());
        }
        keys.push(user.public_key.clone());
    }
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), SHIPPED_USERS.len());
    assert!(server.user("stranger").is_err());
    assert_eq!(
        server.user("ledgerd").unwrap().env("LEDGERD")[0].0,
        "LEDGERD_NATS_NKEY_SEED_FILE"
    );
}

#[test]
fn sync_always_is_applied() {
    let server = NatsServer::start_with(NatsOptions {
        sync_always: true,
        ..NatsOptions::default()
    })
    .unwrap();
    let mut stream = TcpStream::connect(("127.0.0.1", server.monitor_port())).unwrap();
    write!(stream, "GET /varz HTTP/1.0\r\n\r\n").unwrap();
    let mut varz = String::new();
    std::io::Read::read_to_string(&mut stream, &mut varz).unwrap();
    assert!(varz.contains("\"sync_always\": true"), "{varz}");
}

#[test]
fn stop_and_restart_keep_the_port_and_the_store() {
    let mut server = NatsServer::start().unwrap();
    let port = server.port();
    let url = server.url();
    let store = server.store_dir().to_path_buf();
    let first_pid = server.pid().unwrap();

    server.stop().unwrap();
    assert!(!server.is_running());
    assert!(server.pid().is_none());
    assert!(!process_exists(first_pid));
    assert!(
        TcpStream::connect(server.addr()).is_err(),
        "still listening after stop"
    );

    server.restart().unwrap();
    assert!(server.is_running());
    assert_eq!(server.port(), port);
    assert_eq!(server.url(), url);
    assert_eq!(server.store_dir(), store);
    assert_ne!(server.pid().unwrap(), first_pid);
    assert!(read_info(&server).starts_with("INFO "));

    // Restart while running stops first; a crash (SIGKILL) then a restart works too.
    server.restart().unwrap();
    server.kill9().unwrap();
    assert!(
        TcpStream::connect(server.addr()).is_err(),
        "still listening after kill9"
    );
    server.restart().unwrap();
    assert!(read_info(&server).starts_with("INFO "));
}

#[test]
fn drop_kills_the_server_and_removes_its_dir() {
    let server = NatsServer::start().unwrap();
    let pid = server.pid().unwrap();
    let addr = server.addr();
    let dir = server.store_dir().parent().unwrap().to_path_buf();
    assert!(process_exists(pid));
    drop(server);
    assert!(!process_exists(pid), "nats-server {pid} survived drop");
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening after drop"
    );
    assert!(!dir.exists(), "{} not removed", dir.display());
}

#[test]
fn child_guard_kills_on_drop_and_kill9_reports_sigkill() {
    let child = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = child.id();
    drop(ChildGuard::new("sleep", child));
    assert!(!process_exists(pid));

    let mut guard = ChildGuard::new("sleep", Command::new("sleep").arg("60").spawn().unwrap());
    let status = guard.kill9().unwrap();
    assert!(!status.success());
    #[cfg(unix)]
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    // Idempotent.
    assert_eq!(guard.kill9().unwrap(), status);
}

#[test]
fn child_guard_terminate_sends_sigterm() {
    let mut guard = ChildGuard::new("sleep", Command::new("sleep").arg("60").spawn().unwrap());
    let status = guard.terminate(Duration::from_secs(5)).unwrap();
    #[cfg(unix)]
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15)
    );
    assert!(!status.success());
}

#[test]
fn wait_for_port_fails_fast_when_the_child_exits_and_quotes_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("child.log");
    let mut command = Command::new("sh");
    command.args(["-c", "echo boom-from-child >&2; exit 3"]);
    let mut guard = ChildGuard::spawn_logged("sh", &mut command, &log).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let error = guard
        .wait_for_port(addr, Duration::from_secs(30))
        .unwrap_err()
        .to_string();
    assert!(error.contains("exited"), "{error}");
    assert!(error.contains("boom-from-child"), "{error}");
}

#[test]
fn wait_for_port_succeeds_on_a_listener_and_times_out_without() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    wait_for_port(addr, Duration::from_secs(1)).unwrap();
    drop(listener);
    let error = wait_for_port(addr, Duration::from_millis(100)).unwrap_err();
    assert!(error.to_string().contains("within"), "{error}");
}

#[test]
fn workspace_binary_explains_what_to_build() {
    let error = workspace_binary("no-such-binary-xyz")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("cargo build --bin no-such-binary-xyz"),
        "{error}"
    );
}

#[test]
fn workspace_binary_finds_a_file_next_to_the_profile_dir() {
    // The test harness itself lives in <profile>/deps; its sibling in <profile> is found by name.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let name = format!("testkit-probe-{}", std::process::id());
    let path = profile_dir.join(&name);
    std::fs::write(&path, "#!/bin/sh\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let found = workspace_binary(&name);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(found.unwrap(), path);
}

#[test]
fn nats_server_binary_is_found() {
    let path = nats_server_binary().unwrap();
    assert!(path.exists());
}
