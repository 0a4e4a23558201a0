//! Upgrade requests (websockets) served without actix-http's h1 dispatcher.
//!
//! actix-http hands a request that asks for a websocket upgrade, together with
//! its connection, to an *upgrade service* when the server has one; the h1
//! dispatcher, and the 16 KiB of buffers it holds for as long as the connection
//! lives, are dropped. This is that service: it gives the request to the same
//! actix-web `App` as every other request, so routing, handlers and their
//! responses stay as they are, and then runs the connection with a [`Pump`]
//! that holds no buffers while idle. An idle websocket is most of what the
//! proxy holds, so this is most of its memory per session.
//!
//! Handlers see no difference: their `web::Payload` is what the client sends
//! after the request head, and their response is written with the h1 codec
//! that parsed the request. A response that does not switch protocols ends the
//! connection (`Connection: close`), as the dispatcher also does for a request
//! whose websocket stream it cannot drain.

mod feed;
mod pump;

use std::rc::Rc;

use actix_codec::{AsyncRead, AsyncWrite, Framed, FramedParts};
use actix_http::body::BoxBody;
use actix_http::h1::Codec;
use actix_http::{ConnectionType, Payload, Request, Response};
use actix_service::{Service, ServiceFactory, fn_factory, fn_service};
use bytes::{Bytes, BytesMut};

use pump::Pump;

/// The upgrade service for a server whose requests `app` serves. `app` is a
/// second instance of the server's application (actix-http gives the upgrade
/// service no access to the first).
pub fn service<T, A>(
    app: A,
) -> impl ServiceFactory<
    (Request, Framed<T, Codec>),
    Config = (),
    Response = (),
    Error = actix_web::Error,
    InitError = (),
>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
    A: ServiceFactory<Request, Config = ()>,
    A::Service: 'static,
    A::Response: Into<Response<BoxBody>>,
    A::Error: Into<Response<BoxBody>>,
    A::InitError: std::fmt::Debug,
{
    fn_factory(move || {
        let app = app.new_service(());
        async move {
            let app = Rc::new(app.await.map_err(|e| {
                log::error!("cannot start the upgrade service: {e:?}");
            })?);
            Ok(fn_service(move |(req, framed)| {
                serve(app.clone(), req, framed)
            }))
        }
    })
}

/// Serves one upgrade request and then its connection, until either side ends.
async fn serve<T, S>(
    app: Rc<S>,
    mut req: Request,
    framed: Framed<T, Codec>,
) -> Result<(), actix_web::Error>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
    S: Service<Request>,
    S::Response: Into<Response<BoxBody>>,
    S::Error: Into<Response<BoxBody>>,
{
    let FramedParts {
        io,
        codec,
        read_buf,
        ..
    } = framed.into_parts();
    let (feed, stream) = feed::feed();
    // Bytes the client sent right after the head (its first frames, or a
    // hixie-76 challenge) were read with it. Copied so that the dispatcher's
    // 8 KiB read buffer is freed now.
    feed.push(Bytes::copy_from_slice(&read_buf));
    drop(read_buf);
    *req.payload() = Payload::Stream {
        payload: Box::pin(stream),
    };
    let res: Response<BoxBody> = match app.call(req).await {
        Ok(res) => res.into(),
        Err(e) => e.into(),
    };
    let (mut head, body) = res.into_parts();
    if !head.head().upgrade() {
        head.head_mut().set_connection_type(ConnectionType::Close);
    }
    let mut pump = Pump {
        io,
        codec,
        out: BytesMut::new(),
        feed,
        body,
        body_done: false,
    };
    if let Err(e) = pump.start(head) {
        log::debug!("upgraded connection: cannot encode the response: {e}");
        return Ok(());
    }
    match pump.run().await {
        Ok(end) => log::trace!("upgraded connection ended: {end:?}"),
        Err(e) => log::debug!("upgraded connection failed: {e}"),
    }
    Ok(())
}
