//! Appends each line of stdin to a stream and prints each line's offset once it is durable.
//!
//! ```sh
//! seq 5 | cargo run -p dlog-client --example append -- demo/lines
//! ```
//!
//! The server address comes from `DLOG_SERVER` (default `127.0.0.1:7070`).

use dlog_client::{Client, Record, StreamName, WriterOptions};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stream: StreamName = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "demo/lines".to_string())
        .parse()?;
    let server = std::env::var("DLOG_SERVER").unwrap_or_else(|_| "127.0.0.1:7070".to_string());
    let client = Client::connect(&server).await?;
    let writer = client.writer(&stream, WriterOptions::default());

    // Queue every line first (appends are pipelined), then wait for the acknowledgements.
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut pending = Vec::new();
    while let Some(line) = lines.next_line().await? {
        let ack = writer.append(Record::new(line.clone())).await;
        pending.push((line, ack));
    }
    for (line, ack) in pending {
        println!("{}\t{line}", ack.await?);
    }
    Ok(())
}
