//! Puts the pieces together: binds every service's 0MQ sockets, mounts the
//! SockJS services, static directories and the local sockjs-client on one
//! actix-web server, and runs it until SIGINT or SIGTERM.
//!
//! On SIGTERM or SIGINT, [`shutdown`] closes every session, lets the backends
//! hear each `disconnect`, and stops the server within the linger time.

use std::sync::{Arc, Mutex};

use actix_files::NamedFile;
use actix_web::{App, HttpServer, web};

use crate::backend::{Backend, BackendError};
use crate::config::{Config, LOCAL_SOCKJS_URL};
use crate::listen;
use crate::metrics::{self, Sources};
use crate::shutdown;
use crate::sockjs::{Service, Services, dispatch};

/// Seconds open connections get to finish after the shutdown linger: by then
/// every session has its close frame queued, so this is only the margin for
/// writing it out. A shutdown takes at most `--shutdown-linger-ms` plus this.
pub const SHUTDOWN_MARGIN_SECS: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Auth(#[from] crate::auth::jwt::JwtError),
    #[error("cannot listen{what} on {address}: {source}")]
    Listen {
        /// Which listener, when it is not the public HTTP one.
        what: &'static str,
        address: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Mongrel2(#[from] crate::mongrel2::link::LinkError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("server failed: {0}")]
    Run(std::io::Error),
}

/// Runs the proxy until it is told to stop. Must run inside an actix system.
pub async fn run(config: Config) -> Result<(), ServerError> {
    // Said once everything is bound and listening, so a start-up error stays
    // the only line of a failed start.
    let exposed = crate::config::warnings(&config);
    let zmq = tmq::Context::new();
    let mut services = Vec::new();
    let mut sources = Sources::default();
    let mut unstarted = Vec::new();
    let scale = config
        .scale_out
        .as_ref()
        .map(|c| Arc::new(crate::backend::topology::ScaleOut::new(c)));
    let mut unstarted_links = Vec::new();
    // What the shutdown closes: every service's sessions, every route's
    // websockets.
    let mut closers: Vec<Arc<dyn shutdown::Closing>> = Vec::new();
    for s in &config.services {
        if let Some(handler) = &s.mongrel2 {
            // A SockJS service served by Mongrel2 handlers.
            let (link, sub) = crate::mongrel2::link::Link::bind(&zmq, handler.clone())?;
            unstarted_links.push((link.clone(), sub));
            let admission = crate::auth::Authenticator::new(&s.auth, &zmq)?
                .map(|a| Arc::new(a) as Arc<dyn crate::sockjs::admission::Admission>);
            let app = Arc::new(crate::mongrel2::sessions::Sessions::new(link));
            closers.push(app.clone());
            let options = s.options.clone();
            let service =
                Arc::new(Service::new(s.prefix.clone(), options, app).with_admission(admission));
            sources.0.push((service.clone(), None));
            services.push(service);
            continue;
        }
        let (backend, sockets) = match &scale {
            Some(scale) => Backend::connect(&zmq, &s.prefix, &s.backend, scale.clone())?,
            None => Backend::bind(&zmq, &s.prefix, &s.backend)?,
        };
        unstarted.push((backend.clone(), sockets));
        let options = s.options.clone();
        let admission = crate::auth::Authenticator::new(&s.auth, &zmq)?
            .map(|a| Arc::new(a) as Arc<dyn crate::sockjs::admission::Admission>);
        let service = Arc::new(
            Service::new(s.prefix.clone(), options, backend.clone()).with_admission(admission),
        );
        closers.push(backend.clone());
        sources.0.push((service.clone(), Some(backend)));
        services.push(service);
    }
    // Mongrel2 routes: their sockets bound now, their readers started with
    // the backends'.
    let mut routes = Vec::new();
    for settings in &config.mongrel2 {
        let (link, sub) = crate::mongrel2::link::Link::bind(&zmq, settings.clone())?;
        routes.push(link.clone());
        closers.push(link.clone());
        unstarted_links.push((link, sub));
    }
    let unstarted_links = Arc::new(Mutex::new(unstarted_links));
    let services = web::Data::new(Services::new(services));
    let metrics_here = config.metrics_public;
    let metrics = metrics::configure(sources.clone());
    let static_dirs = config.static_dirs.clone();
    let sockjs_client = config.sockjs_client.clone();
    match &sockjs_client {
        Some(path) => log::info!(
            "serving sockjs-client from {} at {}",
            path.display(),
            crate::config::LOCAL_SOCKJS_URL
        ),
        None => {
            if let Some(s) = config.services.first() {
                log::info!(
                    "no local sockjs-client (no --sockjs-client, no {} here): the iframe page loads it from {}",
                    crate::config::DEFAULT_SOCKJS_CLIENT,
                    s.options.sockjs_url
                );
            }
        }
    }
    let bridge = config.bridge.as_ref().map(crate::bridge::Bridge::new);

    let linger = config.shutdown_linger;
    let address = format!("{}:{}", config.http_address, config.http_port);
    // The first worker to start runs the backends' socket tasks (see
    // `Backend::start`); with one worker, everything shares one thread.
    let unstarted = Arc::new(Mutex::new(unstarted));
    let make_app = move || {
        for (backend, sockets) in unstarted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            if let Err(e) = backend.start(sockets) {
                log::error!("{e}");
            }
        }
        for (link, sub) in unstarted_links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            if let Err(e) = link.start(sub) {
                log::error!("{e}");
            }
        }
        let mut app = App::new().app_data(services.clone());
        if metrics_here {
            app = app.configure(metrics.clone());
        }
        app = app.configure(metrics::health);
        if let Some(path) = sockjs_client.clone() {
            app = app.route(
                LOCAL_SOCKJS_URL,
                web::get().to(move || {
                    let path = path.clone();
                    async move { NamedFile::open_async(path).await }
                }),
            );
        }
        for (url, dir) in &static_dirs {
            app = app.service(crate::static_files::service(url, dir));
        }
        if let Some(bridge) = &bridge {
            // Bridge mode: its websocket and client script.
            app = app.configure(|c| bridge.mount(c));
        }
        for link in &routes {
            let link = link.clone();
            app = app.configure(|c| crate::mongrel2::route::mount(link, c));
        }
        app.default_service(web::to(dispatch))
    };
    let tls = match &config.tls {
        Some((cert, key)) => Some(crate::tls::server_config(cert, key)?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let settings = listen::Settings {
        address: address.clone(),
        workers: config.workers,
        shutdown_timeout: SHUTDOWN_MARGIN_SECS,
        tls,
        on_connect: crate::sockjs::on_connect,
    };
    let server = listen::server(settings, make_app).map_err(|source| ServerError::Listen {
        what: "",
        address: address.clone(),
        source,
    })?;
    log::info!("SockJS listening on {scheme}://{address}/");

    // Metrics on a port of their own when asked, to keep them off the public one.
    let metrics_server = match config.metrics_port {
        Some(port) => {
            let address = format!("{}:{port}", config.metrics_address);
            let configure = metrics::configure(sources);
            let server = HttpServer::new(move || {
                App::new()
                    .configure(configure.clone())
                    .configure(metrics::health)
            })
            .workers(1)
            .disable_signals()
            .bind(&address)
            .map_err(|source| ServerError::Listen {
                what: " for --metrics-port",
                address: address.clone(),
                source,
            })?
            .run();
            log::info!("metrics on http://{address}/metrics");
            Some(server)
        }
        None if config.metrics_public => None,
        None => {
            log::info!(
                "/metrics not served: --metrics-port PORT serves it on {}, \
                 --metrics-public on the HTTP port",
                config.metrics_address
            );
            None
        }
    };
    crate::ratelog::spawn_flusher();
    for line in &exposed {
        log::warn!("{line}");
    }
    let handle = server.handle();
    let metrics_handle = metrics_server.as_ref().map(|s| s.handle());
    actix_web::rt::spawn(async move {
        shutdown::on_signal(handle, closers, linger).await;
        if let Some(h) = metrics_handle {
            h.stop(true).await;
        }
    });
    if let Some(m) = metrics_server {
        actix_web::rt::spawn(m);
    }
    let result = server.await.map_err(ServerError::Run);
    // The native engine's ipc files go with their listeners, on the worker
    // that runs them; a worker stopped at the end of the shutdown margin
    // (a client still holding its websocket open) never drops them. Once
    // the server is done, no listener is left: remove them here too.
    if scale.is_none() {
        for s in &config.services {
            if s.backend.engine != crate::backend::Engine::Native {
                continue;
            }
            for endpoint in [&s.backend.push, &s.backend.pull] {
                if let Some(path) = crate::backend::zmtp::native_ipc_path(endpoint) {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
    result
}
