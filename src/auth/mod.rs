//! Authentication of SockJS sessions, outside the SockJS layer: the
//! [`Authenticator`] is a service's [`Admission`], made of an auth service
//! asked over 0MQ ([`service`]) and a JWT checked in the proxy ([`jwt`]).
//! With both set, both must allow: the token is checked first (it costs no
//! round trip, and a denied token never bothers the service), then the
//! service is asked. The session's `user` is the service's if it names one,
//! else the token's `sub`; `auth` merges the token's listed claims and the
//! service's `data`.

pub mod jwt;
pub mod service;

use std::sync::Arc;

use actix_web::http::header::HeaderMap;

use crate::sockjs::admission::{Admission, ConnectInfo, Decision, Pending};

/// One service's authentication settings, built by `crate::config`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub service: Option<service::ServiceSettings>,
    pub jwt: Option<jwt::JwtSettings>,
}

impl Settings {
    pub fn is_on(&self) -> bool {
        self.service.is_some() || self.jwt.is_some()
    }
}

/// A service's admission: token, then auth service.
pub struct Authenticator {
    jwt: Option<jwt::JwtChecker>,
    service: Option<Arc<service::AuthService>>,
}

impl Authenticator {
    /// `None` when neither mechanism is set. Reads the JWT key file.
    pub fn new(
        settings: &Settings,
        zmq: &tmq::Context,
    ) -> Result<Option<Authenticator>, jwt::JwtError> {
        if !settings.is_on() {
            return Ok(None);
        }
        Ok(Some(Authenticator {
            jwt: settings
                .jwt
                .as_ref()
                .map(jwt::JwtChecker::new)
                .transpose()?,
            service: settings
                .service
                .clone()
                .map(|s| Arc::new(service::AuthService::new(zmq.clone(), s))),
        }))
    }
}

impl Admission for Authenticator {
    fn admit(&self, info: &Arc<ConnectInfo>, headers: &HeaderMap) -> Pending {
        let token = self.jwt.as_ref().map(|j| j.check(info, headers));
        if let Some(denied @ Decision::Deny { .. }) = token {
            return Box::pin(std::future::ready(denied));
        }
        let asked = self.service.as_ref().map(|s| s.ask(info));
        Box::pin(async move {
            let service = match asked {
                Some(asked) => Some(asked.await),
                None => None,
            };
            match (token, service) {
                (Some(t), Some(s)) => t.and(s),
                (Some(d), None) | (None, Some(d)) => d,
                (None, None) => Decision::Allow {
                    user: None,
                    auth: None,
                },
            }
        })
    }
}
