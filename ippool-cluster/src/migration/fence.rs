//! The lock's fence. A Lease is only a lock while its holder keeps renewing it: once this process
//! has not confirmed its hold for [`ACT_WITHIN`] (the API server restarting, the network cut, etcd
//! stalled), another process may take the migration over [`LEASE_SECONDS`] after the last
//! renewal. So no write of this process reaches the API server unless the hold was confirmed
//! within [`ACT_WITHIN`]; the Lease's own writes pass, since they are conditional on the version
//! this process last wrote and are how it confirms (or learns it lost) the hold. A write refused
//! here fails with [`Unconfirmed`]; the step that made it confirms the hold and runs again.
//!
//! [`LEASE_SECONDS`]: super::record::LEASE_SECONDS

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Method, Request};
use tower::{BoxError, Layer, Service};

/// How long after its last confirmed renewal this process still writes: the Lease lapses after
/// 30 s, so a write sent within 15 s has 15 s to arrive before anyone else may hold the lock.
pub const ACT_WITHIN: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// No lock is held (planning, `--abort`): writes are not fenced.
    Unheld,
    /// The Lease was written at this instant (taken before the request was sent).
    Confirmed(Instant),
    /// Another process took the Lease: nothing more is written.
    Lost,
}

/// When this process last confirmed that it holds the migration's Lease; shared by the lock (which
/// confirms) and the fence in front of the clients (which reads).
#[derive(Debug, Clone)]
pub struct LeaseClock {
    hold: Arc<Mutex<Hold>>,
}

impl Default for LeaseClock {
    fn default() -> LeaseClock {
        LeaseClock {
            hold: Arc::new(Mutex::new(Hold::Unheld)),
        }
    }
}

impl LeaseClock {
    fn set(&self, change: impl FnOnce(Hold) -> Hold) {
        let mut hold = self.hold.lock().unwrap_or_else(|p| p.into_inner());
        *hold = change(*hold);
    }

    fn get(&self) -> Hold {
        *self.hold.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The Lease was written by a request sent at `sent`.
    pub fn confirm(&self, sent: Instant) {
        self.set(|hold| match hold {
            Hold::Confirmed(earlier) if earlier > sent => hold,
            Hold::Lost => hold,
            _ => Hold::Confirmed(sent),
        });
    }

    /// The lock was released (the Lease deleted by this process).
    pub fn release(&self) {
        self.set(|_| Hold::Unheld);
    }

    /// Another process holds the Lease now.
    pub fn lose(&self) {
        self.set(|_| Hold::Lost);
    }

    /// Whether the hold was confirmed recently enough to act.
    pub fn may_act(&self) -> bool {
        self.unconfirmed().is_none()
    }

    /// Why a write may not be sent now, if it may not.
    fn unconfirmed(&self) -> Option<Unconfirmed> {
        match self.get() {
            Hold::Unheld => None,
            Hold::Confirmed(at) if at.elapsed() < ACT_WITHIN => None,
            Hold::Confirmed(at) => Some(Unconfirmed::Lapsed(at.elapsed())),
            Hold::Lost => Some(Unconfirmed::Lost),
        }
    }
}

/// A write this process did not send, because it could not be sure it still holds the lock.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unconfirmed {
    #[error(
        "not sent: this process last confirmed it holds the migration lock {}s ago (it writes only \
         within {}s of a confirmation)",
        .0.as_secs(),
        ACT_WITHIN.as_secs()
    )]
    Lapsed(Duration),
    #[error("not sent: another process holds the migration lock now")]
    Lost,
}

/// The layer that fences a client's writes with a [`LeaseClock`].
#[derive(Debug, Clone)]
pub struct Fence {
    clock: LeaseClock,
}

impl Fence {
    pub fn new(clock: LeaseClock) -> Fence {
        Fence { clock }
    }
}

impl<S> Layer<S> for Fence {
    type Service = Fenced<S>;

    fn layer(&self, inner: S) -> Fenced<S> {
        Fenced {
            inner,
            clock: self.clock.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Fenced<S> {
    inner: S,
    clock: LeaseClock,
}

/// Whether `request` changes something other than the migration's Lease.
fn is_fenced<B>(request: &Request<B>) -> bool {
    let writes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let path = request.uri().path();
    let lease = path.starts_with("/apis/coordination.k8s.io/") && path.contains("/leases");
    writes && !lease
}

type Boxed<R> = Pin<Box<dyn Future<Output = Result<R, BoxError>> + Send>>;

impl<S, B> Service<Request<B>> for Fenced<S>
where
    S: Service<Request<B>>,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Boxed<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if is_fenced(&request)
            && let Some(why) = self.clock.unconfirmed()
        {
            return Box::pin(std::future::ready(Err(BoxError::from(why))));
        }
        let response = self.inner.call(request);
        Box::pin(async move { response.await.map_err(Into::into) })
    }
}

/// Whether `error` (a client's, any depth) is a write the fence held back.
pub fn held_back(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<Unconfirmed>().is_some() {
            return true;
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    fn request(method: Method, path: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap()
    }

    async fn sent(clock: &LeaseClock, method: Method, path: &str) -> Result<(), BoxError> {
        let service = Fence::new(clock.clone()).layer(tower::service_fn(|_: Request<()>| async {
            Ok::<_, BoxError>(())
        }));
        service.oneshot(request(method, path)).await
    }

    const POOL: &str = "/apis/crd.projectcalico.org/v1/ippools/old";
    const LEASE: &str =
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/ippool-migration";

    #[tokio::test]
    async fn writes_pass_only_while_the_hold_is_fresh() {
        let clock = LeaseClock::default();
        assert!(
            sent(&clock, Method::DELETE, POOL).await.is_ok(),
            "no lock held"
        );
        clock.confirm(Instant::now());
        assert!(sent(&clock, Method::DELETE, POOL).await.is_ok());

        clock.confirm(Instant::now() - ACT_WITHIN - Duration::from_secs(1));
        assert!(
            clock.may_act(),
            "an older confirmation never replaces a newer one"
        );

        let lapsed = LeaseClock::default();
        lapsed.confirm(Instant::now() - ACT_WITHIN - Duration::from_secs(1));
        let refused = sent(&lapsed, Method::PATCH, POOL).await.unwrap_err();
        assert!(held_back(refused.as_ref()), "{refused}");
        assert!(
            refused.to_string().contains("confirmed it holds"),
            "{refused}"
        );
        assert!(sent(&lapsed, Method::GET, POOL).await.is_ok(), "reads pass");
        assert!(
            sent(&lapsed, Method::PUT, LEASE).await.is_ok(),
            "renewals pass"
        );

        lapsed.lose();
        lapsed.confirm(Instant::now());
        let refused = sent(&lapsed, Method::POST, POOL).await.unwrap_err();
        assert_eq!(refused.to_string(), Unconfirmed::Lost.to_string());
        lapsed.release();
        assert!(sent(&lapsed, Method::POST, POOL).await.is_ok());
    }
}
