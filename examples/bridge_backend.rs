//! The bridge sample's backends, plain 0MQ processes that know nothing of the
//! proxy (the seed's ports by default):
//!
//! - a REP service on tcp://127.0.0.1:10001: RPC requests
//!   (`{"funcname", "args", "kwargs"}`) go to an [`RpcServer`] with `echo`,
//!   `add`, `add_user` (guarded: only `hugo` may) and `fail`; anything else
//!   is echoed back as it came, like the seed's REP;
//! - a PUB counter on tcp://127.0.0.1:10002, published as the RPC call
//!   `counter(n)` for the browser's `zmq.PubRPCServer`.
//!
//! ```text
//! cargo run --example bridge_backend -- [--rep ENDPOINT] [--pub ENDPOINT] [--interval-ms 1000]
//! ```

use std::time::Duration;

use clap::Parser;
use serde_json::{Value, json};
use sockjsproxy::bridge::rpc::{PubRpcClient, RpcError, RpcServer};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "tcp://127.0.0.1:10001")]
    rep: String,
    #[arg(long = "pub", default_value = "tcp://127.0.0.1:10002")]
    publish: String,
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
}

fn rpc() -> RpcServer {
    let number = |v: &Value| v.as_f64().ok_or(RpcError::Failed("not a number".into()));
    RpcServer::new()
        .function("echo", |call| Ok(call.arg(0, "msg")?.clone()))
        .function("add", move |call| {
            Ok(json!(
                number(call.arg(0, "a")?)? + number(call.arg(1, "b")?)?
            ))
        })
        .function("add_user", |call| {
            let kind = call.arg(2, "type").cloned().unwrap_or(json!("boy"));
            Ok(json!({"status": "success", "user": call.arg(0, "username")?, "type": kind}))
        })
        .guard("add_user", |call| {
            call.arg(0, "username").is_ok_and(|u| u == "hugo")
        })
        .function("fail", |_| {
            Err(RpcError::Failed("fail always fails".into()))
        })
}

fn is_rpc(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v.get("funcname").is_some())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), tmq::TmqError> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let zmq = tmq::Context::new();
    let mut rep = tmq::reply(&zmq).set_linger(0).bind(&args.rep)?;
    let publish = tmq::publish(&zmq).set_linger(0).bind(&args.publish)?;
    log::info!("REP on {}, PUB counter on {}", args.rep, args.publish);

    let mut pub_rpc = PubRpcClient::new(publish);
    let interval = Duration::from_millis(args.interval_ms.max(1));
    tokio::spawn(async move {
        for n in 0u64.. {
            if pub_rpc.rpc("counter", &[json!(n)]).await.is_err() {
                break;
            }
            tokio::time::sleep(interval).await;
        }
    });

    let rpc = rpc();
    loop {
        let (request, sender) = rep.recv().await?;
        let body: Vec<u8> = request.iter().flat_map(|m| m.to_vec()).collect();
        let reply = if is_rpc(&body) {
            rpc.handle(&body).to_string().into_bytes()
        } else {
            body
        };
        rep = sender
            .send(tmq::Multipart::from(vec![tmq::Message::from(&reply[..])]))
            .await?;
    }
}
