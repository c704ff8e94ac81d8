//! The `dlog` binary's contract at its edges: help, usage errors (exit 2), and failures
//! (`error: …`, exit 1). Commands against a real cluster are tested end to end by the
//! integration harness.

use std::net::TcpListener;
use std::process::{Command, Output};

fn dlog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dlog"))
        .args(args)
        .env_remove("DLOG_SERVER")
        .output()
        .expect("run dlog")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_lists_the_commands() {
    let out = dlog(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "stream",
        "append",
        "read",
        "tail",
        "bench",
        "--server",
        "DLOG_SERVER",
    ] {
        assert!(help.contains(cmd), "{cmd} missing from:\n{help}");
    }
    let out = dlog(&["bench", "append", "--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--inflight"));
}

#[test]
fn usage_errors_exit_with_2() {
    for args in [
        &["append", "not-a-stream"][..],
        &["read", "ns/s", "--from", "1", "--at", "0"],
        &["stream", "create", "ns/s", "--segment-bytes", "huge"],
        &["frobnicate"],
    ] {
        let out = dlog(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn unreachable_server_is_an_error_with_status_1() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let out = dlog(&["--server", &addr, "stream", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(&addr), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
