//! Puts the pieces together: binds every service's 0MQ sockets, mounts the
//! SockJS services, static directories and the local sockjs-client on one
//! actix-web server, and runs it until SIGINT or SIGTERM.
//!
//! actix-web stops accepting on a signal and gives open requests
//! `SHUTDOWN_TIMEOUT` to finish; the session actors stop with the system, which
//! tells each service's backend `disconnect` for every session still open.

use std::sync::Arc;

use actix_files::{Files, NamedFile};
use actix_web::{App, HttpServer, web};

use crate::backend::{Backend, BackendError};
use crate::config::{Config, LOCAL_SOCKJS_URL};
use crate::sockjs::{Service, Services, dispatch};

/// Seconds open requests get to finish after a shutdown signal.
const SHUTDOWN_TIMEOUT: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Run(std::io::Error),
}

/// Runs the proxy until it is told to stop. Must run inside an actix system.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let zmq = tmq::Context::new();
    let mut services = Vec::new();
    for s in &config.services {
        let backend = Backend::bind(&zmq, &s.push, &s.pull, &s.prefix)?;
        services.push(Arc::new(Service::new(
            s.prefix.clone(),
            s.options.clone(),
            backend,
        )));
    }
    let services = web::Data::new(Services::new(services));
    let static_dirs = config.static_dirs.clone();
    let sockjs_client = config.sockjs_client.clone();
    let bridge = config.bridge.as_ref().map(crate::bridge::Bridge::new);

    let address = format!("{}:{}", config.http_address, config.http_port);
    let server = HttpServer::new(move || {
        let mut app = App::new().app_data(services.clone());
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
            app = app.service(
                Files::new(url, dir)
                    .index_file("index.html")
                    .redirect_to_slash_directory(),
            );
        }
        if let Some(bridge) = &bridge {
            // Bridge mode (issue 4): its websocket and client script.
            app = app.configure(|c| bridge.mount(c));
        }
        app.default_service(web::to(dispatch))
    })
    .workers(config.workers)
    .shutdown_timeout(SHUTDOWN_TIMEOUT)
    .bind(&address)
    .map_err(|source| ServerError::Listen {
        address: address.clone(),
        source,
    })?;

    log::info!("SockJS listening on http://{address}/");
    for s in &config.services {
        log::info!(
            "service {:?}: push {} pull {}",
            if s.prefix.is_empty() { "/" } else { &s.prefix },
            s.push,
            s.pull
        );
    }
    server.run().await.map_err(ServerError::Run)
}
