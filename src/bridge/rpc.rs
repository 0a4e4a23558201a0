//! RPC helpers for backends written in Rust, speaking ZmqWebBridge's RPC
//! format so that `zmq.RPCClient` and `zmq.PubRPCServer` in the browser work
//! against a service of a few lines.
//!
//! - [`RpcServer`] answers `{"funcname", "args", "kwargs"}` on a REP socket
//!   with `{"returnval": ..}` or `{"status": "error", "error_msg": ..}`.
//!   Only registered functions can be called (the original called any
//!   attribute when its list was unset), and a function's `can_<name>` guard,
//!   when registered, is called with the same arguments and denies on
//!   `false`. The original's guard looked up `can_<name>` but then called a
//!   method literally named `can_funcname`, so any guarded function failed.
//! - [`PubRpcClient`] publishes `{"funcname", "args"}` for browser
//!   `zmq.PubRPCServer`s on a PUB socket: the server calls into the browsers.
//!
//! ```no_run
//! # async fn run() -> Result<(), tmq::TmqError> {
//! use sockjsproxy::bridge::rpc::{RpcServer, RpcError};
//! let rpc = RpcServer::new()
//!     .function("echo", |call| Ok(call.arg(0, "msg")?.clone()))
//!     .function("add_user", |call| Ok(serde_json::json!({"status": "success"})))
//!     .guard("add_user", |call| call.arg(0, "username").is_ok_and(|u| u == "hugo"));
//! let socket = tmq::reply(&tmq::Context::new()).bind("tcp://127.0.0.1:10001")?;
//! rpc.serve(socket).await
//! # }
//! ```

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use futures_util::SinkExt;
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    #[error("unknown function {0:?}")]
    Unknown(String),
    /// The original's wording, kept for clients that test for it.
    #[error("unauthorized access")]
    Unauthorized,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("missing argument {0:?}")]
    MissingArgument(&'static str),
    /// A function's own failure; its text goes to the caller.
    #[error("{0}")]
    Failed(String),
}

/// One call's arguments: positional, then keyword.
pub struct Call<'a> {
    pub args: &'a [Value],
    pub kwargs: &'a Map<String, Value>,
}

impl Call<'_> {
    /// Argument `index`, or the keyword argument `name` (as Python would bind it).
    pub fn arg(&self, index: usize, name: &'static str) -> Result<&Value, RpcError> {
        self.args
            .get(index)
            .or_else(|| self.kwargs.get(name))
            .ok_or(RpcError::MissingArgument(name))
    }
}

type Function = Box<dyn Fn(&Call) -> Result<Value, RpcError> + Send + Sync>;
type Guard = Box<dyn Fn(&Call) -> bool + Send + Sync>;

/// A registry of callable functions and their guards.
#[derive(Default)]
pub struct RpcServer {
    functions: HashMap<String, Function>,
    guards: HashMap<String, Guard>,
}

impl RpcServer {
    pub fn new() -> RpcServer {
        RpcServer::default()
    }

    /// Makes `name` callable.
    pub fn function(
        mut self,
        name: &str,
        f: impl Fn(&Call) -> Result<Value, RpcError> + Send + Sync + 'static,
    ) -> RpcServer {
        self.functions.insert(name.to_string(), Box::new(f));
        self
    }

    /// The `can_<name>` check: called before `name` with the same arguments.
    pub fn guard(
        mut self,
        name: &str,
        check: impl Fn(&Call) -> bool + Send + Sync + 'static,
    ) -> RpcServer {
        self.guards.insert(name.to_string(), Box::new(check));
        self
    }

    /// Runs one request; never fails, errors are replies too.
    pub fn handle(&self, request: &[u8]) -> Value {
        match self.call(request) {
            Ok(returnval) => json!({ "returnval": returnval }),
            Err(e) => json!({"status": "error", "error_msg": e.to_string()}),
        }
    }

    fn call(&self, request: &[u8]) -> Result<Value, RpcError> {
        let request: Value =
            serde_json::from_slice(request).map_err(|e| RpcError::BadRequest(e.to_string()))?;
        let name = request
            .get("funcname")
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::BadRequest("no string funcname".into()))?;
        // A lone non-array `args` is one argument; the original unpacked a
        // string into its characters.
        let args = match request.get("args") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(one) => vec![one.clone()],
        };
        let kwargs = match request.get("kwargs") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(k)) => k.clone(),
            Some(_) => return Err(RpcError::BadRequest("kwargs must be an object".into())),
        };
        let function = self
            .functions
            .get(name)
            .ok_or_else(|| RpcError::Unknown(name.to_string()))?;
        let call = Call {
            args: &args,
            kwargs: &kwargs,
        };
        // A panicking function must not take the service down with it.
        let run = |f: &dyn Fn() -> Result<Value, RpcError>| {
            catch_unwind(AssertUnwindSafe(f))
                .unwrap_or_else(|_| Err(RpcError::Failed(format!("{name} panicked"))))
        };
        if let Some(guard) = self.guards.get(name) {
            let allowed = run(&|| Ok(Value::Bool(guard(&call))))?;
            if allowed != Value::Bool(true) {
                return Err(RpcError::Unauthorized);
            }
        }
        run(&|| function(&call))
    }

    /// Serves requests on a bound or connected REP socket until it fails.
    pub async fn serve(&self, mut socket: tmq::request_reply::RequestReceiver) -> tmq::Result<()> {
        loop {
            let (request, sender) = socket.recv().await?;
            // A REP hands over the body; a multi-part body is joined.
            let body: Vec<u8> = request.iter().flat_map(|m| m.to_vec()).collect();
            let reply = self.handle(&body).to_string();
            let reply = tmq::Multipart::from(vec![tmq::Message::from(reply.as_bytes())]);
            socket = sender.send(reply).await?;
        }
    }
}

/// Calls functions of browser `zmq.PubRPCServer`s through a PUB socket.
pub struct PubRpcClient {
    socket: tmq::publish::Publish,
}

impl PubRpcClient {
    pub fn new(socket: tmq::publish::Publish) -> PubRpcClient {
        PubRpcClient { socket }
    }

    /// The message for one call: `{"funcname", "args"}` (no kwargs: JS has
    /// none). `funcname` comes first, so that a browser SUB can subscribe to
    /// one function with the prefix `{"funcname":"name"`.
    pub fn message(funcname: &str, args: &[Value]) -> String {
        format!(
            "{{\"funcname\":{},\"args\":{}}}",
            Value::from(funcname),
            Value::from(args.to_vec())
        )
    }

    /// Publishes one call. PUB never blocks on subscribers; with none, the call is lost.
    pub async fn rpc(&mut self, funcname: &str, args: &[Value]) -> tmq::Result<()> {
        let message = PubRpcClient::message(funcname, args);
        self.socket
            .send(tmq::Multipart::from(vec![tmq::Message::from(
                message.as_bytes(),
            )]))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> RpcServer {
        RpcServer::new()
            .function("echo", |c| Ok(c.arg(0, "msg")?.clone()))
            .function("add_user", |c| {
                let kind = c.arg(2, "type").cloned().unwrap_or(json!("boy"));
                Ok(json!({"status": "success", "type": kind}))
            })
            .guard("add_user", |c| {
                c.arg(0, "username").is_ok_and(|u| u == "hugo")
            })
            .function("fail", |_| Err(RpcError::Failed("it broke".into())))
            .function("panic", |_| panic!("boom"))
    }

    fn call(request: Value) -> Value {
        server().handle(request.to_string().as_bytes())
    }

    #[test]
    fn calls_return_their_value() {
        let r = call(json!({"funcname": "echo", "args": ["hello!"], "kwargs": {}}));
        assert_eq!(r, json!({"returnval": "hello!"}));
        // The README's `rpc('echo', 'hello!', ...)`: one argument, not six letters.
        assert_eq!(
            call(json!({"funcname": "echo", "args": "hello!"}))["returnval"],
            "hello!"
        );
        assert_eq!(
            call(json!({"funcname": "echo", "kwargs": {"msg": 1}}))["returnval"],
            1
        );
    }

    #[test]
    fn guards_are_called_with_the_arguments() {
        let hugo = call(
            json!({"funcname": "add_user", "args": ["hugo", "pw"], "kwargs": {"type": "girl"}}),
        );
        assert_eq!(
            hugo["returnval"],
            json!({"status": "success", "type": "girl"})
        );
        let eve = call(json!({"funcname": "add_user", "args": ["eve", "pw"]}));
        assert_eq!(
            eve,
            json!({"status": "error", "error_msg": "unauthorized access"})
        );
    }

    #[test]
    fn errors_are_replies() {
        let error = |r: Value| r["error_msg"].as_str().unwrap().to_string();
        assert_eq!(
            error(call(json!({"funcname": "nope"}))),
            "unknown function \"nope\""
        );
        assert_eq!(error(call(json!({"funcname": "fail"}))), "it broke");
        assert_eq!(error(call(json!({"funcname": "panic"}))), "panic panicked");
        assert!(error(call(json!({"funcname": "echo"}))).contains("missing argument"));
        assert!(error(server().handle(b"not json")).starts_with("bad request"));
    }

    #[test]
    fn pub_messages_have_the_originals_shape() {
        let m: Value =
            serde_json::from_str(&PubRpcClient::message("add", &[json!(1), json!(2)])).unwrap();
        assert_eq!(m, json!({"funcname": "add", "args": [1, 2]}));
        assert!(PubRpcClient::message("add", &[]).starts_with(r#"{"funcname":"add""#));
    }
}
