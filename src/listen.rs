//! The public HTTP server: actix-web's `HttpServer` put together from its
//! parts, because `HttpServer` cannot install an upgrade service and websocket
//! upgrades must go to [`crate::upgrade`] to leave the h1 dispatcher's buffers
//! behind. Everything else is what `HttpServer` does with the settings the
//! proxy used: its timeouts and backlog, `SO_REUSEADDR`, graceful shutdown of
//! keep-alive connections, the per-connection hook, and half-closed
//! connections refused (a client that closes its connection ends its requests
//! at once, so an aborted streaming or polling request closes its session and
//! the backend hears `disconnect` without waiting for a write to fail).

use std::any::Any;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::time::Duration;

use actix_http::body::BoxBody;
use actix_http::{HttpService, KeepAlive};
use actix_server::{Server, ServerBuilder};
use actix_service::{IntoServiceFactory, ServiceFactory, ServiceFactoryExt, map_config};
use actix_web::App;
use actix_web::dev::{AppConfig, Extensions, ServiceRequest, ServiceResponse};

/// `HttpServer`'s defaults.
const BACKLOG: u32 = 1024;
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// `TCP_USER_TIMEOUT` of every connection (see [`listener`]).
const UNACKED_TIMEOUT: Duration = Duration::from_secs(60);

/// How to serve.
pub struct Settings {
    pub address: String,
    pub workers: usize,
    /// Seconds open requests get to finish after a stop.
    pub shutdown_timeout: u64,
    pub tls: Option<rustls::ServerConfig>,
    /// Called with each accepted connection (a `TcpStream` for plain HTTP).
    pub on_connect: fn(&dyn Any, &mut Extensions),
}

/// Binds `settings.address` and returns the server, not yet running. Each
/// worker calls `make_app` twice: one app serves ordinary requests, the other
/// websocket upgrades.
pub fn server<F, T>(settings: Settings, make_app: F) -> io::Result<Server>
where
    F: Fn() -> App<T> + Send + Clone + 'static,
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<BoxBody>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
{
    let mut builder = ServerBuilder::default()
        .workers(settings.workers)
        .backlog(BACKLOG)
        .shutdown_timeout(settings.shutdown_timeout)
        .disable_signals();
    let shutdown = builder.graceful_shutdown_signal();
    let on_connect = settings.on_connect;
    for listener in listeners(&settings.address)? {
        let local = listener.local_addr()?;
        let secure = settings.tls.is_some();
        // What `HttpServer` gives an app: the scheme and, for requests
        // without a Host header, the listening address as host. actix-web has
        // no public constructor for it; this is the one actix-test uses, and
        // the reason Cargo.toml pins actix-web to ~4.18. This is the only use
        // of actix internals in the crate.
        let app_config = move |_: ()| AppConfig::__priv_test_new(secure, local.to_string(), local);
        let make_app = make_app.clone();
        let shutdown = shutdown.clone();
        macro_rules! http_service {
            () => {{
                let app = || {
                    map_config(
                        make_app()
                            .into_factory()
                            .map_err(|e: actix_web::Error| e.error_response()),
                        app_config,
                    )
                };
                let shutdown = shutdown.clone();
                HttpService::build()
                    .keep_alive(KeepAlive::default())
                    .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
                    .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
                    .h1_allow_half_closed(false)
                    .local_addr(local)
                    .graceful_shutdown_signal(move || {
                        let shutdown = shutdown.clone();
                        async move { shutdown.notified().await }
                    })
                    .on_connect_ext(move |io: &_, ext: &mut Extensions| {
                        on_connect(io as &dyn Any, ext)
                    })
                    .upgrade(crate::upgrade::service(app()))
                    .finish(app())
            }};
        }
        let name = format!("sockjsproxy-{local}");
        builder = match &settings.tls {
            None => builder.listen(name, listener, move || http_service!().tcp())?,
            Some(tls) => {
                let tls = tls.clone();
                builder.listen(name, listener, move || {
                    http_service!().rustls_0_23(tls.clone())
                })?
            }
        };
    }
    Ok(builder.run())
}

/// Listening sockets on every address `address` resolves to, made as
/// `HttpServer` makes them.
fn listeners(address: &str) -> io::Result<Vec<TcpListener>> {
    let mut last = None;
    let mut sockets = Vec::new();
    for addr in address.to_socket_addrs()? {
        match listener(addr) {
            Ok(l) => sockets.push(l),
            Err(e) => last = Some(e),
        }
    }
    match (sockets.is_empty(), last) {
        (false, _) => Ok(sockets),
        (true, Some(e)) => Err(e),
        (true, None) => Err(io::Error::other("the address resolves to nothing")),
    }
}

fn listener(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // A restarted proxy can bind while its old connections are in TIME_WAIT.
    socket.set_reuse_address(true)?;
    // Accepted connections inherit it: a peer that acknowledges nothing we
    // send for this long is gone (or will not read), and the kernel closes
    // the connection, so dead hixie-76, streaming and websocket peers are
    // reaped after the next heartbeat or ping instead of holding descriptors.
    socket.set_tcp_user_timeout(Some(UNACKED_TIMEOUT))?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG as i32)?;
    Ok(TcpListener::from(socket))
}
