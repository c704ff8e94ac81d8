//! The service processes the stream tests start: `dlogd standalone`, `dlogd server`, and the
//! `dlog` CLI, each on free ports, killed if a test fails midway.

use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{DLOGD, free_port};

/// The `dlog` CLI, built next to `dlogd` (scripts/test builds every binary first).
pub(super) fn dlog_bin() -> PathBuf {
    let p = Path::new(DLOGD).with_file_name("dlog");
    assert!(
        p.exists(),
        "{} is missing: build it with `cargo build --bins --workspace`",
        p.display()
    );
    p
}

/// A `dlogd standalone` process on free ports.
pub(super) struct Standalone {
    pub(super) child: Child,
    pub(super) data: PathBuf,
    pub(super) addr: String,
    pub(super) http: String,
}

impl Drop for Standalone {
    /// A test that fails midway must not leave its processes behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Standalone {
    pub(super) fn start(data: &Path) -> Standalone {
        Self::start_on(data, free_port(), free_port())
    }

    pub(super) fn start_on(data: &Path, port: u16, http_port: u16) -> Standalone {
        Self::start_with(data, port, http_port, &[], &[])
    }

    /// With extra flags and environment variables.
    pub(super) fn start_with(
        data: &Path,
        port: u16,
        http_port: u16,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Standalone {
        let addr = format!("127.0.0.1:{port}");
        let http = format!("127.0.0.1:{http_port}");
        let child = Command::new(DLOGD)
            .args(["standalone", "--data-dir"])
            .arg(data)
            .args(["--listen", &addr, "--http-listen", &http])
            .args(["--retention-interval", "200ms"])
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut s = Standalone {
            child,
            data: data.to_path_buf(),
            addr,
            http,
        };
        s.wait_ready();
        s
    }

    pub(super) fn wait_ready(&mut self) {
        let t = Instant::now();
        while TcpStream::connect(&self.addr).is_err() {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("dlogd standalone exited during start-up: {st}");
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "standalone not ready"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(super) fn port(&self) -> u16 {
        self.addr.rsplit_once(':').unwrap().1.parse().unwrap()
    }

    pub(super) fn http_port(&self) -> u16 {
        self.http.rsplit_once(':').unwrap().1.parse().unwrap()
    }

    /// SIGTERM and wait for a clean exit.
    pub(super) fn stop(mut self) {
        self.terminate();
    }

    pub(super) fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                assert!(s.success(), "standalone exited with {s}");
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "standalone did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs `dlog` with `args` and `stdin`; returns (exit code, stdout, stderr).
pub(super) fn dlog(server: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    dlog_env(server, args, stdin, &[])
}

/// [`dlog`] with extra environment variables.
pub(super) fn dlog_env(
    server: &str,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut child = Command::new(dlog_bin())
        .args(["--server", server])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A `dlogd server` process.
pub(super) struct ServerProc {
    pub(super) child: Option<Child>,
    pub(super) addr: String,
    pub(super) cfg: PathBuf,
}

impl ServerProc {
    pub(super) fn start(dir: &Path, name: &str, metadata: &str) -> ServerProc {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "node = \"{name}\"\nmetadata = \"{metadata}\"\nlisten = \"{addr}\"\n\
                 http_listen = \"127.0.0.1:{}\"\nownership_ttl = \"2s\"\n\
                 retention_interval = \"200ms\"\n\
                 [ledger]\nrequest_timeout = \"3s\"\n",
                free_port()
            ),
        )
        .unwrap();
        let out = Command::new(DLOGD)
            .args(["server", "--check-config", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut p = ServerProc {
            child: None,
            addr,
            cfg,
        };
        p.spawn();
        p
    }

    pub(super) fn spawn(&mut self) {
        let child = Command::new(DLOGD)
            .args(["server", "--config"])
            .arg(&self.cfg)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t = Instant::now();
        while TcpStream::connect(&self.addr).is_err() {
            assert!(t.elapsed() < Duration::from_secs(30), "server not ready");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM: the node seals its streams and gives up their ownership, then exits 0.
    pub(super) fn terminate(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let pid = c.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let t = Instant::now();
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                assert!(s.success(), "dlogd server exited with {s}");
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "dlogd server did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(super) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.kill9();
    }
}
