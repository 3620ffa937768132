//! A failed API request, explained for the person at the keyboard: what was being done, what the
//! server (or the network) said, and what to do about it — never a bare status code.

use std::error::Error as _;
use std::fmt;

/// One API request that failed. `action` names what was being done ("list IPAM blocks
/// (ipamblocks.crd.projectcalico.org/v1)"); the display adds the cause and a way forward.
/// The kube error is kept in `error` but not chained as a `source`: its display (debug dump of
/// the Status, bare codes) is what this type exists to replace.
#[derive(Debug, thiserror::Error)]
#[error("{action}: {}", Explained(&self.error))]
pub struct RequestError {
    pub action: String,
    pub error: kube::Error,
}

impl RequestError {
    pub fn new(action: impl Into<String>, error: kube::Error) -> RequestError {
        RequestError {
            action: action.into(),
            error,
        }
    }

    /// The HTTP status the API server answered with, if it answered.
    pub fn status_code(&self) -> Option<u16> {
        match &self.error {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        }
    }

    /// The object changed since it was read (optimistic concurrency lost).
    pub fn is_conflict(&self) -> bool {
        self.status_code() == Some(409)
    }

    pub fn is_not_found(&self) -> bool {
        self.status_code() == Some(404)
    }

    /// A `continue` token expired during a paginated list.
    pub fn is_gone(&self) -> bool {
        self.status_code() == Some(410)
    }
}

/// Shorthand for mapping a kube error into a [`RequestError`] with its action.
pub(crate) trait Context<T> {
    fn context(self, action: impl FnOnce() -> String) -> Result<T, RequestError>;
}

impl<T> Context<T> for Result<T, kube::Error> {
    fn context(self, action: impl FnOnce() -> String) -> Result<T, RequestError> {
        self.map_err(|e| RequestError::new(action(), e))
    }
}

struct Explained<'a>(&'a kube::Error);

impl fmt::Display for Explained<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            kube::Error::Api(status) => {
                let message = if status.message.is_empty() {
                    status.reason.as_str()
                } else {
                    status.message.as_str()
                };
                match status.code {
                    401 => write!(
                        f,
                        "the API server rejected the credentials of the current context ({message}); \
                         log in again or pick another context with --context/--kubeconfig"
                    ),
                    403 => write!(
                        f,
                        "permission denied: {message}; ask a cluster admin for an RBAC rule that allows \
                         it (check with `kubectl auth can-i`)"
                    ),
                    404 => write!(f, "not found: {message}"),
                    409 if status.reason == "AlreadyExists" => write!(
                        f,
                        "already exists: {message}; change it with `kubectl ippool apply`, or pick another name"
                    ),
                    409 => write!(
                        f,
                        "conflict: {message}; the object changed while this command worked on it — \
                         run the command again to act on its current state"
                    ),
                    410 => write!(
                        f,
                        "the list expired before it was read completely ({message}); run the command again"
                    ),
                    422 => write!(f, "the API server refused the object: {message}"),
                    429 => write!(
                        f,
                        "the API server asked to slow down ({message}); try again in a moment"
                    ),
                    code if code >= 500 => write!(
                        f,
                        "the API server failed ({message}); check its health (`kubectl get --raw /readyz`)"
                    ),
                    _ => write!(f, "{message} ({})", status.reason),
                }
            }
            kube::Error::SerdeError(e) => write!(
                f,
                "the answer was not what a Kubernetes API server sends ({e}); check that the \
                 kubeconfig's server is the cluster's API server"
            ),
            kube::Error::BuildRequest(e) => write!(f, "could not build the request: {e}"),
            other => {
                let chain = error_chain(other);
                let lower = chain.to_lowercase();
                if lower.contains("connection refused") {
                    write!(
                        f,
                        "cannot connect to the API server (connection refused); check that the cluster \
                         is running and that --kubeconfig/--context point at it"
                    )
                } else if lower.contains("timed out") || lower.contains("elapsed") {
                    write!(
                        f,
                        "no answer from the API server in time ({chain}); raise --request-timeout or \
                         check the network path to the cluster"
                    )
                } else if lower.contains("certificate") || lower.contains("tls") {
                    write!(
                        f,
                        "TLS with the API server failed ({chain}); check the cluster's \
                         certificate-authority and the client certificate in the kubeconfig"
                    )
                } else if lower.contains("dns")
                    || lower.contains("lookup")
                    || lower.contains("resolve")
                {
                    write!(
                        f,
                        "cannot resolve the API server's host name ({chain}); check the server URL in \
                         the kubeconfig"
                    )
                } else {
                    write!(
                        f,
                        "{chain}; check that --kubeconfig/--context point at a reachable cluster"
                    )
                }
            }
        }
    }
}

/// The error and its sources, innermost last, so that "connection refused" deep inside hyper is seen.
fn error_chain(e: &kube::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api_error(code: u16, reason: &str, message: &str) -> RequestError {
        let status = Status::failure(message, reason).with_code(code);
        RequestError::new("list IP pools", kube::Error::Api(status.boxed()))
    }

    #[test]
    fn forbidden_names_the_missing_permission_and_what_to_do() {
        let e = api_error(
            403,
            "Forbidden",
            "ippools.crd.projectcalico.org is forbidden: User \"dev\" cannot list resource \"ippools\" \
             in API group \"crd.projectcalico.org\" at the cluster scope",
        );
        let text = e.to_string();
        assert!(
            text.starts_with("list IP pools: permission denied"),
            "{text}"
        );
        assert!(text.contains("cannot list resource \"ippools\""), "{text}");
        assert!(text.contains("RBAC"), "{text}");
        assert!(!text.contains("403"), "{text}");
    }

    #[test]
    fn not_found_and_conflict_are_recognised() {
        let e = api_error(
            404,
            "NotFound",
            "ippools.crd.projectcalico.org \"x\" not found",
        );
        assert!(e.is_not_found());
        assert!(e.to_string().contains("not found: ippools"));
        let c = api_error(409, "Conflict", "the object has been modified");
        assert!(c.is_conflict());
        assert!(c.to_string().contains("run the command again"));
    }
}
