mod common;
use common::*;
use presence_core::AgentStatus;
use std::time::Duration;
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dbg() {
    let server = TestServer::start().await;
    let acct = server.create_account("dbg").await;
    let a = device(&server.url(), &acct).await;
    let b = device(&server.url(), &acct).await;
    let token = server.raw_login(&acct, "observer").await;
    a.client.set_network_available(false).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    a.client.set_status(AgentStatus::Online).await.unwrap();
    eprintln!("A set at wall {now}");
    tokio::time::sleep(Duration::from_millis(25)).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    b.client.set_status(AgentStatus::Busy).await.unwrap();
    eprintln!("B set at wall {now}");
    wait_until(&b.client, "b", |s| {
        s.status.unwrap().confirmed == AgentStatus::Busy
    })
    .await;
    eprintln!("after B: {}", server.me(&token).await["status"]);
    a.client.set_network_available(true).await;
    wait_until(&a.client, "a", |s| s.outbox.pending == 0).await;
    eprintln!("after A: {}", server.me(&token).await["status"]);
}
