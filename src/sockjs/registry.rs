//! The sessions of one service by their client-chosen URL id, so that the
//! separate HTTP requests of polling and streaming transports find their
//! session. Websocket sessions are not here: each websocket is its own session,
//! even when two use the same URL id (the protocol requires both to work).

use std::collections::HashMap;
use std::sync::Mutex;

use actix::Addr;

use super::budget::Share;
use super::session::Session;

#[derive(Default)]
pub struct Registry {
    sessions: Mutex<HashMap<String, (Addr<Session>, Share)>>,
}

impl Registry {
    /// The session `id`, and its share of the application's budget (which
    /// its `xhr_send` and `jsonp_send` requests reserve from).
    pub fn get(&self, id: &str) -> Option<(Addr<Session>, Share)> {
        self.lock().get(id).cloned()
    }

    /// Returns the live session for `id`, or the one `create` makes. `create`
    /// runs under the lock so that two requests cannot both create one.
    pub fn get_or_create<E>(
        &self,
        id: &str,
        create: impl FnOnce() -> Result<Addr<Session>, E>,
    ) -> Result<Addr<Session>, E> {
        let mut sessions = self.lock();
        if let Some((addr, _)) = sessions.get(id).filter(|(a, _)| a.connected()) {
            return Ok(addr.clone());
        }
        let addr = create()?;
        sessions.insert(id.to_string(), (addr.clone(), Share::default()));
        Ok(addr)
    }

    /// Removes `id` if it still names `addr` (a newer session may have taken it).
    pub fn remove(&self, id: &str, addr: &Addr<Session>) {
        let mut sessions = self.lock();
        if sessions.get(id).is_some_and(|(a, _)| a == addr) {
            sessions.remove(id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Addr<Session>, Share)>> {
        // A panic elsewhere while holding the lock leaves the map usable.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}
