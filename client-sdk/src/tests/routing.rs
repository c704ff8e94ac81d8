//! Routing: "not owner" redirects, lookups, and their bound.

use std::sync::{Arc, OnceLock};

use dlog_api::wire::client::{OwnerInfo, Request, Response, ResponseError, SeekBy, op};
use dlog_api::{ErrorCode, Offset};

use super::fake_server::{FakeServer, reply};
use super::{connect, stream};
use crate::{Client, ClientOptions};

async fn owner() -> FakeServer {
    FakeServer::start(|_| reply(Ok(Response::Position(Offset(7))))).await
}

#[tokio::test]
async fn not_owner_with_an_address_is_followed_and_remembered() {
    let b = owner().await;
    let b_addr = b.addr.clone();
    let a = FakeServer::start(move |_| {
        reply(Err(ResponseError::not_owner(
            Some(b_addr.clone()),
            "owned elsewhere",
        )))
    })
    .await;
    let client = connect(&a.addr).await;
    assert_eq!(
        client.seek(&stream(), SeekBy::Txid(1)).await.unwrap(),
        Offset(7)
    );
    assert_eq!(
        client.seek(&stream(), SeekBy::Txid(1)).await.unwrap(),
        Offset(7)
    );
    assert_eq!(
        a.calls().len(),
        1,
        "the second request went straight to the owner"
    );
    assert_eq!(b.calls().len(), 2);
}

#[tokio::test]
async fn not_owner_without_an_address_looks_the_owner_up() {
    let b = owner().await;
    let b_addr = b.addr.clone();
    let a = FakeServer::start(move |call| match call.request {
        Request::Lookup(_) => reply(Ok(Response::Owner(OwnerInfo {
            owner: Some(b_addr.clone()),
            epoch: 3,
        }))),
        _ => reply(Err(ResponseError::not_owner(None, "ownership is moving"))),
    })
    .await;
    let client = connect(&a.addr).await;
    assert_eq!(
        client.seek(&stream(), SeekBy::Txid(1)).await.unwrap(),
        Offset(7)
    );
    let ops: Vec<u8> = a.calls().iter().map(|c| c.request.op()).collect();
    assert_eq!(ops, vec![op::SEEK, op::LOOKUP]);
    let info = client.lookup(&stream()).await.unwrap();
    assert_eq!(info.owner.as_deref(), Some(b.addr.as_str()));
    assert_eq!(info.epoch, 3);
}

#[tokio::test]
async fn redirects_are_bounded() {
    let me: Arc<OnceLock<String>> = Arc::default();
    let myself = me.clone();
    let a = FakeServer::start(move |_| {
        reply(Err(ResponseError::not_owner(
            myself.get().cloned(),
            "try me again",
        )))
    })
    .await;
    me.set(a.addr.clone()).unwrap();
    let options = ClientOptions {
        max_redirects: 3,
        ..ClientOptions::default()
    };
    let client = Client::connect_with(&a.addr, options).await.unwrap();
    let err = client.seek(&stream(), SeekBy::Txid(1)).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotOwner));
    assert!(
        err.to_string().contains("gave up after 3 redirects"),
        "{err}"
    );
    assert_eq!(a.calls().len(), 4);
}
