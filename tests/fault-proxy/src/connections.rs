//! The open client connections, so that `drop` and `cut on` can abort them, and the cut itself.
//!
//! Each connection has an abort signal. Every task serving it — the connection's own and, for
//! HTTP/2, one per stream (see [`StreamExecutor`]) — holds a receiver and ends when it fires; the
//! receivers double as a count of those tasks, so an abort can wait until all of them are gone
//! (and have logged their requests as cut short) before the command is answered.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tokio::sync::watch;

/// How long an abort waits for a connection's tasks to end; they end at their next poll, so this
/// bound is only against a task stuck in something that never yields.
const ABORT_GRACE: Duration = Duration::from_secs(5);

/// Why a connection was aborted (the request log tells the two apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    /// `drop`
    Dropped,
    /// `cut on`
    Cut,
}

/// A connection's abort signal: None while it may run.
pub type AbortSignal = watch::Receiver<Option<Abort>>;

/// Resolves once `signal` has fired.
pub async fn aborted(signal: &mut AbortSignal) {
    // An Err means the sender is gone, which cannot happen while the connection is registered;
    // either way the connection has no reason to run on.
    let _ = signal.wait_for(Option::is_some).await;
}

#[derive(Debug, Default)]
pub struct Connections {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// `cut on`: new connections are closed as soon as they are accepted.
    cut: bool,
    next_id: u64,
    open: HashMap<u64, watch::Sender<Option<Abort>>>,
}

impl Connections {
    /// Registers a connection just accepted and returns its abort signal, or None when the network
    /// is cut and the connection is to be closed at once. The cut is checked under the same lock
    /// that `cut` takes, so no connection slips in between the cut and the aborts.
    pub fn admit(self: &Arc<Self>) -> Option<AbortSignal> {
        let mut state = self.lock();
        if state.cut {
            return None;
        }
        let (abort, signal) = watch::channel(None);
        let id = state.next_id;
        state.next_id += 1;
        state.open.insert(id, abort.clone());
        // Forget the connection once its last task has ended.
        let connections = Arc::clone(self);
        tokio::spawn(async move {
            abort.closed().await;
            connections.lock().open.remove(&id);
        });
        Some(signal)
    }

    /// `drop`: aborts every open connection; resolves once they are gone.
    pub fn drop_all(&self) -> impl Future<Output = ()> + use<> {
        let open: Vec<_> = self.lock().open.values().cloned().collect();
        abort(open, Abort::Dropped)
    }

    /// `cut on`: aborts every open connection and closes new ones until [`Connections::restore`].
    pub fn cut(&self) -> impl Future<Output = ()> + use<> {
        let open: Vec<_> = {
            let mut state = self.lock();
            state.cut = true;
            state.open.values().cloned().collect()
        };
        abort(open, Abort::Cut)
    }

    /// `cut off`: new connections are served again.
    pub fn restore(&self) {
        self.lock().cut = false;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent whatever panicked while holding the lock.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn abort(open: Vec<watch::Sender<Option<Abort>>>, why: Abort) -> impl Future<Output = ()> + use<> {
    for connection in &open {
        connection.send_replace(Some(why));
    }
    async move {
        let gone = futures::future::join_all(open.iter().map(|c| c.closed()));
        if tokio::time::timeout(ABORT_GRACE, gone).await.is_err() {
            eprintln!(
                "fault-proxy: some aborted connections still had tasks after {ABORT_GRACE:?}"
            );
        }
    }
}

/// Runs the tasks hyper spawns for a connection's HTTP/2 streams, ending them with the connection
/// when it is aborted: otherwise a stream's task would outlive its socket until the upstream answered.
#[derive(Debug, Clone)]
pub struct StreamExecutor {
    pub abort: AbortSignal,
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, stream: F) {
        let mut abort = self.abort.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stream => {}
                () = aborted(&mut abort) => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cut_closes_new_connections_until_restored() {
        let connections = Arc::new(Connections::default());
        let mut before = connections.admit().expect("admitted before the cut");
        let task = tokio::spawn(async move {
            aborted(&mut before).await;
            *before.borrow()
        });
        connections.cut().await;
        assert_eq!(task.await.unwrap(), Some(Abort::Cut));
        assert!(connections.admit().is_none());
        connections.restore();
        let after = connections.admit().expect("admitted after the cut");
        assert_eq!(*after.borrow(), None);
    }

    #[tokio::test]
    async fn drop_waits_for_the_connection_tasks() {
        let connections = Arc::new(Connections::default());
        let mut signal = connections.admit().unwrap();
        let task = tokio::spawn(async move {
            aborted(&mut signal).await;
            *signal.borrow()
        });
        connections.drop_all().await;
        assert!(task.is_finished());
        assert_eq!(task.await.unwrap(), Some(Abort::Dropped));
    }
}
