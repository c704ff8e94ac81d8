//! Unit tests of the SDK against [`fake_server::FakeServer`], an in-process node speaking the
//! client protocol. End-to-end tests against real `dlogd` processes live with the integration
//! harness.

mod admin;
#[cfg(feature = "cli")]
mod cli;
mod connection;
mod fake_server;
mod reader;
mod routing;
mod writer;

use dlog_api::StreamName;

use crate::{Client, ClientOptions};

fn stream() -> StreamName {
    "ns/s".parse().expect("valid name")
}

async fn connect(addr: &str) -> Client {
    Client::connect(addr).await.expect("connect")
}

/// A client with short timeouts, for tests that wait for one.
async fn connect_impatient(addr: &str) -> Client {
    let options = ClientOptions {
        request_timeout: std::time::Duration::from_millis(300),
        ..ClientOptions::default()
    };
    Client::connect_with(addr, options).await.expect("connect")
}
