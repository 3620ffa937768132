//! Riding out a passing outage: a migration runs for minutes to hours, and in that time the API
//! server restarts (an upgrade), etcd stalls, a load balancer drops connections or sheds load.
//! A request that fails that way is sent again, with exponential backoff (and the server's
//! `Retry-After`), until it has been failing for the run's budget. What is retried: no connection
//! (refused, reset, closed mid-response, timed out) and the answers that mean "not now" — 500,
//! 502, 503, 504, and 429 unless the client must see it (an eviction's 429 is a disruption
//! budget's "no", not load). Writes are retried too: each is conditional on a resourceVersion or
//! a create that reports "already exists", so a repeat that finds its first attempt done is
//! refused and handled as the conflict it is.

use std::error::Error as StdError;
use std::time::Duration;
use tokio::time::Instant;

use http::{Request, Response, StatusCode};
use kube::client::Body;
use tower::BoxError;
use tower::retry::Policy;

const FIRST_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// The retry policy of a migration's clients; one clone per request keeps that request's tries.
#[derive(Debug, Clone)]
pub struct RetryTransient {
    budget: Duration,
    too_many_requests: bool,
    first_failure: Option<Instant>,
    delay: Duration,
}

impl RetryTransient {
    /// Retries for up to `budget` after a request first failed; `too_many_requests`: a 429 is
    /// retried as well.
    pub fn new(budget: Duration, too_many_requests: bool) -> RetryTransient {
        RetryTransient {
            budget,
            too_many_requests,
            first_failure: None,
            delay: FIRST_DELAY,
        }
    }

    fn retryable_status(&self, status: StatusCode) -> bool {
        match status {
            StatusCode::TOO_MANY_REQUESTS => self.too_many_requests,
            StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => true,
            _ => false,
        }
    }

    /// The wait before the next try, or `None` when the budget is spent.
    fn next_wait(&mut self, asked: Option<Duration>) -> Option<Duration> {
        let first = *self.first_failure.get_or_insert_with(Instant::now);
        let backoff = self.delay;
        self.delay = (self.delay * 2).min(MAX_DELAY);
        let jitter = backoff.mul_f64(fastrand::f64() * 0.2);
        let wait = asked.unwrap_or(backoff + jitter);
        (first.elapsed() + wait <= self.budget).then_some(wait)
    }
}

/// `Retry-After` in seconds, as the API server sends it.
fn retry_after<B>(response: &Response<B>) -> Option<Duration> {
    let seconds = response.headers().get(http::header::RETRY_AFTER)?;
    Some(Duration::from_secs(
        seconds.to_str().ok()?.trim().parse().ok()?,
    ))
}

/// Whether the request failed on its way (no connection, a connection lost), as opposed to an
/// error of the request itself (a certificate refused, a credential plugin failing, the fence).
pub fn is_connection_failure(error: &(dyn StdError + 'static)) -> bool {
    use std::io::ErrorKind::*;
    if let Some(io) = error.downcast_ref::<std::io::Error>() {
        if matches!(
            io.kind(),
            ConnectionRefused
                | ConnectionReset
                | ConnectionAborted
                | BrokenPipe
                | UnexpectedEof
                | TimedOut
                | NotConnected
        ) {
            return true;
        }
        // Connectors wrap the socket's error in I/O errors of their own (of kind `Other`), and
        // an I/O error's `source` skips what it wraps: the kind that tells is the innermost one.
        if let Some(inner) = io.get_ref() {
            return is_connection_failure(inner);
        }
    }
    if let Some(h) = error.downcast_ref::<hyper::Error>()
        && (h.is_incomplete_message() || h.is_canceled() || h.is_closed() || h.is_timeout())
    {
        return true;
    }
    error.source().is_some_and(is_connection_failure)
}

impl<Res> Policy<Request<Body>, Response<Res>, BoxError> for RetryTransient {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _request: &mut Request<Body>,
        result: &mut Result<Response<Res>, BoxError>,
    ) -> Option<Self::Future> {
        let wait = match result {
            Ok(response) if self.retryable_status(response.status()) => {
                let asked = retry_after(response);
                self.next_wait(asked)?
            }
            Err(error) if is_connection_failure(error.as_ref()) => self.next_wait(None)?,
            _ => return None,
        };
        tracing::debug!("request failed in passing; trying again in {wait:?}");
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, request: &Request<Body>) -> Option<Request<Body>> {
        let body = request.body().try_clone()?;
        let mut copy = Request::builder()
            .method(request.method().clone())
            .uri(request.uri().clone())
            .version(request.version())
            .body(body)
            .ok()?;
        *copy.headers_mut() = request.headers().clone();
        *copy.extensions_mut() = request.extensions().clone();
        Some(copy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::{Layer as _, ServiceExt as _, retry::RetryLayer};

    /// A service that answers with `answers` in turn (the last one from then on).
    async fn tries(
        policy: RetryTransient,
        answers: Vec<Result<u16, std::io::ErrorKind>>,
    ) -> (Result<u16, String>, usize) {
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        let service = tower::service_fn(move |_: Request<Body>| {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let answer = answers[n.min(answers.len() - 1)];
            async move {
                match answer {
                    Ok(code) => Ok(Response::builder().status(code).body(()).unwrap()),
                    Err(kind) => Err(BoxError::from(std::io::Error::from(kind))),
                }
            }
        });
        let request = Request::builder()
            .uri("/api/v1/pods")
            .body(Body::empty())
            .unwrap();
        let result = RetryLayer::new(policy)
            .layer(service)
            .oneshot(request)
            .await;
        (
            result
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string()),
            count.load(Ordering::SeqCst),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn passing_failures_are_retried_and_others_are_not() {
        use std::io::ErrorKind::*;
        let budget = Duration::from_secs(60);
        let (result, n) = tries(
            RetryTransient::new(budget, true),
            vec![
                Err(ConnectionRefused),
                Ok(503),
                Err(ConnectionReset),
                Ok(429),
                Ok(200),
            ],
        )
        .await;
        assert_eq!((result, n), (Ok(200), 5));

        let (result, n) = tries(RetryTransient::new(budget, false), vec![Ok(429), Ok(200)]).await;
        assert_eq!(
            (result, n),
            (Ok(429), 1),
            "an eviction's 429 comes back at once"
        );

        let (result, n) = tries(RetryTransient::new(budget, true), vec![Ok(409), Ok(200)]).await;
        assert_eq!(
            (result, n),
            (Ok(409), 1),
            "a conflict is the caller's to handle"
        );

        let wrapped =
            std::io::Error::other(std::io::Error::new(UnexpectedEof, "tls handshake eof"));
        assert!(is_connection_failure(&wrapped), "found inside a wrapper");

        let (result, n) = tries(
            RetryTransient::new(budget, true),
            vec![Err(InvalidData), Ok(200)],
        )
        .await;
        assert!(result.is_err() && n == 1, "a TLS failure is not passing");

        let (result, n) = tries(
            RetryTransient::new(Duration::from_secs(10), true),
            vec![Ok(503)],
        )
        .await;
        assert_eq!(result, Ok(503), "the budget ends it");
        assert!((4..=8).contains(&n), "{n} tries in 10 s of backoff");
    }
}
