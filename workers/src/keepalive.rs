//! Keep-alive connections to the app's FastCGI backend, shared by its requests.
//!
//! php-fpm serves one connection per child: a child holding a keep-alive connection
//! reads only that connection and accepts no other. So with `fastcgi_keepalive = N` at
//! most N connections are open at once, busy or idle, each holding a [`Slot`], and a
//! request that finds none idle and no free slot waits, first come first served, for
//! one to be put back (or for a slot to free up). Set to the pool's `pm.max_children`,
//! every child serves requests back to back on its own connection; set higher, the
//! connections past the children's count would wait in php-fpm's accept queue behind
//! children that never accept again. A connection is put back only after a clean
//! exchange (the whole response read, up to a well-formed END_REQUEST); the most
//! recently used is handed out first, so under light load the same few children stay
//! busy and the others fall idle and are closed by [`Pool::prune`] after
//! [`IDLE_LIMIT`]. This module must never hand out a connection that [`Pool::put`] did
//! not receive, nor one idle past the limit, nor let more than N slots exist.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// How long an idle connection is kept.
pub const IDLE_LIMIT: Duration = Duration::from_secs(10);

/// Connections to one backend: at most `max` open, the idle ones kept for reuse.
pub struct Pool<C> {
    shared: Arc<Shared<C>>,
}

struct Shared<C> {
    max: usize,
    state: Mutex<State<C>>,
}

struct State<C> {
    /// Slots in existence: connections open, being opened, or about to be.
    open: usize,
    /// Idle connections, most recently used last.
    idle: Vec<(C, Instant)>,
    /// Requests waiting for a connection, oldest first.
    waiters: VecDeque<oneshot::Sender<Grant<C>>>,
}

/// The right to keep one connection open. Dropped with its connection, it passes to
/// the oldest waiting request, or frees up.
pub struct Slot<C> {
    shared: Arc<Shared<C>>,
    /// False for a slot that was never handed out (its waiter had gone).
    armed: bool,
}

/// What a request gets from the pool.
#[derive(Debug)]
pub enum Grant<C> {
    /// An idle connection, ready for the next exchange.
    Conn(C),
    /// A free slot: open a new connection with it.
    Slot(Slot<C>),
}

/// A request's turn in the pool.
#[derive(Debug)]
pub enum Acquire<C> {
    Now(Grant<C>),
    /// Resolves when a connection is put back or a slot frees up.
    Wait(oneshot::Receiver<Grant<C>>),
}

impl<C> std::fmt::Debug for Pool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Pool")
            .field("max", &self.shared.max)
            .field("open", &state.open)
            .field("idle", &state.idle.len())
            .field("waiting", &state.waiters.len())
            .finish()
    }
}

impl<C> std::fmt::Debug for Slot<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

impl<C> Pool<C> {
    /// A pool of up to `max` keep-alive connections; 0 keeps none.
    pub fn new(max: usize) -> Self {
        let state = State { open: 0, idle: Vec::new(), waiters: VecDeque::new() };
        Self { shared: Arc::new(Shared { max, state: Mutex::new(state) }) }
    }

    /// Whether connections are kept at all.
    pub fn enabled(&self) -> bool {
        self.shared.max > 0
    }

    /// The most recently used idle connection, else a free slot, else a place in line.
    pub fn acquire(&self) -> Acquire<C> {
        let (acquired, expired) = {
            let mut state = self.shared.lock();
            let expired = state.take_expired();
            let acquired = if let Some((conn, _)) = state.idle.pop() {
                Acquire::Now(Grant::Conn(conn))
            } else if state.open < self.shared.max {
                state.open += 1;
                Acquire::Now(Grant::Slot(Slot { shared: Arc::clone(&self.shared), armed: true }))
            } else {
                let (tx, rx) = oneshot::channel();
                state.waiters.push_back(tx);
                Acquire::Wait(rx)
            };
            (acquired, expired)
        };
        drop(expired); // closed outside the lock: each frees its slot
        acquired
    }

    /// Puts back a connection (which holds its [`Slot`]) after a clean exchange: to
    /// the oldest waiting request, else among the idle.
    pub fn put(&self, conn: C) {
        let refused = {
            let mut state = self.shared.lock();
            match state.hand_over(Grant::Conn(conn)) {
                Some(Grant::Conn(conn)) => {
                    state.idle.push((conn, Instant::now()));
                    None
                }
                other => other,
            }
        };
        drop(refused);
    }

    /// Closes the connections idle for [`IDLE_LIMIT`] or longer.
    pub fn prune(&self) {
        let expired = self.shared.lock().take_expired();
        drop(expired);
    }

    /// How many connections are idle now.
    pub fn idle(&self) -> usize {
        self.shared.lock().idle.len()
    }
}

impl<C> Shared<C> {
    fn lock(&self) -> MutexGuard<'_, State<C>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<C> State<C> {
    /// The idle connections past the limit (oldest first in `idle`), to be dropped
    /// by the caller once the lock is released.
    fn take_expired(&mut self) -> Vec<(C, Instant)> {
        let fresh = self.idle.iter().position(|(_, since)| since.elapsed() < IDLE_LIMIT);
        let stale = fresh.unwrap_or(self.idle.len());
        self.idle.drain(..stale).collect()
    }

    /// Gives `grant` to the oldest request still waiting; returns it if none is.
    fn hand_over(&mut self, mut grant: Grant<C>) -> Option<Grant<C>> {
        while let Some(waiter) = self.waiters.pop_front() {
            match waiter.send(grant) {
                Ok(()) => return None,
                Err(back) => grant = back, // that request gave up
            }
        }
        Some(grant)
    }
}

impl<C> Drop for Slot<C> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut state = self.shared.lock();
        let next = Slot { shared: Arc::clone(&self.shared), armed: true };
        match state.hand_over(Grant::Slot(next)) {
            None => {} // the slot lives on with the oldest waiter
            Some(Grant::Slot(mut unwanted)) => {
                unwanted.armed = false; // no one waits: the slot frees up
                state.open -= 1;
            }
            Some(Grant::Conn(_)) => unreachable!("a slot was handed over"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in connection: a name and the slot it holds.
    #[derive(Debug)]
    struct Conn(&'static str, #[allow(dead_code)] Slot<Conn>);

    fn slot(pool: &Pool<Conn>) -> Slot<Conn> {
        match pool.acquire() {
            Acquire::Now(Grant::Slot(slot)) => slot,
            _ => panic!("expected a free slot"),
        }
    }

    fn name(grant: Grant<Conn>) -> &'static str {
        match grant {
            Grant::Conn(conn) => conn.0,
            Grant::Slot(_) => "slot",
        }
    }

    #[test]
    fn the_newest_idle_connection_is_handed_out_first() {
        let pool = Pool::new(2);
        let (a, b) = (Conn("a", slot(&pool)), Conn("b", slot(&pool)));
        pool.put(a);
        pool.put(b);
        let Acquire::Now(first) = pool.acquire() else { panic!("idle ones are ready") };
        assert_eq!(name(first), "b");
    }

    #[test]
    fn past_max_a_request_waits_and_gets_the_next_connection_put_back() {
        let pool = Pool::new(1);
        let a = Conn("a", slot(&pool));
        let Acquire::Wait(mut first) = pool.acquire() else { panic!("one is open") };
        let Acquire::Wait(mut second) = pool.acquire() else { panic!("one is open") };
        pool.put(a);
        let got = first.try_recv().expect("the oldest waiter is served");
        assert!(second.try_recv().is_err(), "the next one still waits");
        assert_eq!(name(got), "a");
    }

    #[test]
    fn a_closed_connection_passes_its_slot_to_a_waiter_or_frees_it() {
        let pool = Pool::new(1);
        let a = Conn("a", slot(&pool));
        let Acquire::Wait(gave_up) = pool.acquire() else { panic!("one is open") };
        let Acquire::Wait(mut waiting) = pool.acquire() else { panic!("one is open") };
        drop(gave_up);
        drop(a); // abandoned mid-exchange: closed, not put back
        let Ok(Grant::Slot(slot)) = waiting.try_recv() else { panic!("the slot passes on") };
        assert_eq!(pool.shared.lock().open, 1);
        drop(slot);
        assert_eq!(pool.shared.lock().open, 0, "no one waits: the slot frees up");
        assert!(matches!(pool.acquire(), Acquire::Now(Grant::Slot(_))));
    }

    #[test]
    fn a_disabled_pool_gives_nothing() {
        let pool: Pool<Conn> = Pool::new(0);
        assert!(!pool.enabled());
    }

    #[test]
    fn connections_past_the_idle_limit_are_closed_not_handed_out() {
        let pool = Pool::new(3);
        let Some(old) = Instant::now().checked_sub(IDLE_LIMIT + Duration::from_secs(1)) else {
            return; // a clock this close to its epoch: nothing to test
        };
        let (a, b) = (Conn("a", slot(&pool)), Conn("b", slot(&pool)));
        pool.shared.lock().idle.extend([(a, old), (b, old)]);
        pool.put(Conn("c", slot(&pool)));
        pool.prune();
        assert_eq!((pool.idle(), pool.shared.lock().open), (1, 1), "the stale two are closed");
        let Acquire::Now(fresh) = pool.acquire() else { panic!("c is idle") };
        assert_eq!(name(fresh), "c");
        let d = Conn("d", slot(&pool));
        pool.shared.lock().idle.push((d, old));
        assert!(
            matches!(pool.acquire(), Acquire::Now(Grant::Slot(_))),
            "an expired connection is closed, and its slot is handed out instead"
        );
    }
}
