//! Counting the API requests a run makes (reported in its `finished` event): a tower layer that
//! wraps a kube client's HTTP stack.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tower::{Layer, Service};

/// Counts every request of the clients built with it; clones share the count.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    count: Arc<AtomicU64>,
}

impl RequestCounter {
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl<S> Layer<S> for RequestCounter {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            count: self.count.clone(),
        }
    }
}

/// A service that counts the requests it passes on.
#[derive(Debug, Clone)]
pub struct Counted<S> {
    inner: S,
    count: Arc<AtomicU64>,
}

impl<S, R> Service<R> for Counted<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn every_call_is_counted_across_clones() {
        let counter = RequestCounter::default();
        let service = counter.layer(tower::service_fn(|n: u32| async move {
            Ok::<_, std::convert::Infallible>(n + 1)
        }));
        assert_eq!(service.clone().oneshot(1).await.unwrap(), 2);
        assert_eq!(service.oneshot(2).await.unwrap(), 3);
        assert_eq!(counter.count(), 2);
    }
}
