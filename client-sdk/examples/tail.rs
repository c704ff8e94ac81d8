//! Follows a stream from its end and prints each new record as it arrives (Ctrl-C to stop).
//!
//! ```sh
//! cargo run -p dlog-client --example tail -- demo/lines
//! ```
//!
//! The server address comes from `DLOG_SERVER` (default `127.0.0.1:7070`).

use dlog_client::{Client, ReaderOptions, StartAt, StreamName};
use futures::StreamExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stream: StreamName = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "demo/lines".to_string())
        .parse()?;
    let server = std::env::var("DLOG_SERVER").unwrap_or_else(|_| "127.0.0.1:7070".to_string());
    let client = Client::connect(&server).await?;
    let mut reader = client.reader(
        &stream,
        ReaderOptions {
            start: StartAt::End,
            follow: true,
            ..ReaderOptions::default()
        },
    );
    while let Some(read) = reader.next().await {
        let read = read?;
        println!(
            "{}\t{}",
            read.offset,
            String::from_utf8_lossy(&read.record.payload)
        );
    }
    Ok(())
}
