//! A failed API request, explained for the person at the keyboard: what was being done, what the
//! server (or the network) said, and what to do about it — never a bare status code.

use std::error::Error as _;
use std::fmt;

/// One API request that failed — the one error type of every read, write, conversion and watch of
/// this crate. `action` names what was being done ("list IPAM blocks
/// (ipamblocks.crd.projectcalico.org/v1)"); the display adds the cause and a way forward.
/// A kube error is kept but not chained as a `source`: its display (debug dump of the Status, bare
/// codes) is what this type exists to replace.
#[derive(Debug, thiserror::Error)]
#[error("{action}: {cause}")]
pub struct RequestError {
    pub action: String,
    cause: Cause,
}

#[derive(Debug)]
enum Cause {
    /// The API server (or the way to it) failed the request.
    Api(kube::Error),
    /// The object read is not what the model says a Calico object is.
    Decode(serde_json::Error),
    /// A conditional write was asked for without the version to condition it on.
    MissingResourceVersion,
    /// A watch failed; kube's watcher relists and resumes by itself.
    Watch(kube::runtime::watcher::Error),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use kube::runtime::watcher::Error as Watch;
        match self {
            Cause::Api(e) => Explained(e).fmt(f),
            Cause::Decode(e) => write!(
                f,
                "the object is not what Calico's schema says ({e}); check it with `kubectl get -o yaml`"
            ),
            Cause::MissingResourceVersion => f.write_str(
                "the object has no metadata.resourceVersion: a replace must carry the version the \
                 object was read at (read it, change it, then replace it)",
            ),
            Cause::Watch(
                Watch::InitialListFailed(e) | Watch::WatchStartFailed(e) | Watch::WatchFailed(e),
            ) => Explained(e).fmt(f),
            Cause::Watch(Watch::WatchError(status)) => {
                Explained(&kube::Error::Api(status.clone())).fmt(f)
            }
            Cause::Watch(other) => write!(f, "the watch failed ({other})"),
        }
    }
}

impl RequestError {
    pub fn new(action: impl Into<String>, error: kube::Error) -> RequestError {
        RequestError {
            action: action.into(),
            cause: Cause::Api(error),
        }
    }

    /// The object read during `action` does not decode into the model.
    pub fn decode(action: impl Into<String>, error: serde_json::Error) -> RequestError {
        RequestError {
            action: action.into(),
            cause: Cause::Decode(error),
        }
    }

    /// A replace without the resourceVersion that makes it conditional.
    pub fn missing_resource_version(action: impl Into<String>) -> RequestError {
        RequestError {
            action: action.into(),
            cause: Cause::MissingResourceVersion,
        }
    }

    pub fn watch(action: impl Into<String>, error: kube::runtime::watcher::Error) -> RequestError {
        RequestError {
            action: action.into(),
            cause: Cause::Watch(error),
        }
    }

    /// The HTTP status the API server answered with, if it answered.
    pub fn status_code(&self) -> Option<u16> {
        use kube::runtime::watcher::Error as Watch;
        match &self.cause {
            Cause::Api(kube::Error::Api(status))
            | Cause::Watch(
                Watch::InitialListFailed(kube::Error::Api(status))
                | Watch::WatchStartFailed(kube::Error::Api(status))
                | Watch::WatchFailed(kube::Error::Api(status)),
            ) => Some(status.code),
            Cause::Watch(Watch::WatchError(status)) => Some(status.code),
            _ => None,
        }
    }

    /// The object changed since it was read (optimistic concurrency lost), or, for a create,
    /// the name is taken: both are a 409 and both mean "read again".
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

    /// Whether the request failed in passing — the API server or the way to it away for a while,
    /// or a write the lock's fence held back — so that the same work may succeed when tried
    /// again.
    pub fn is_transient(&self) -> bool {
        use kube::runtime::watcher::Error as Watch;
        let passing = |e: &kube::Error| match e {
            kube::Error::Api(status) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
            kube::Error::HyperError(_) | kube::Error::ReadEvents(_) => true,
            kube::Error::Service(e) => {
                crate::migration::retry::is_connection_failure(e.as_ref())
                    || crate::migration::fence::held_back(e.as_ref())
            }
            _ => false,
        };
        match &self.cause {
            Cause::Api(e)
            | Cause::Watch(
                Watch::InitialListFailed(e) | Watch::WatchStartFailed(e) | Watch::WatchFailed(e),
            ) => passing(e),
            Cause::Watch(Watch::WatchError(status)) => {
                matches!(status.code, 429 | 500 | 502 | 503 | 504)
            }
            _ => false,
        }
    }

    /// Why the object did not decode, when that is what failed.
    pub fn decode_error(&self) -> Option<&serde_json::Error> {
        match &self.cause {
            Cause::Decode(e) => Some(e),
            _ => None,
        }
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

    #[test]
    fn reads_writes_and_watches_fail_with_the_same_explanations() {
        let status = Status::failure("ipamblocks is forbidden", "Forbidden").with_code(403);
        let watch = RequestError::watch(
            "watch IPAMBlock (ipamblocks.crd.projectcalico.org/v1)",
            kube::runtime::watcher::Error::WatchError(status.boxed()),
        );
        assert_eq!(watch.status_code(), Some(403));
        assert!(watch.to_string().contains("permission denied"), "{watch}");
        let decode = RequestError::decode(
            "read IPPool p",
            serde_json::from_str::<u8>("\"x\"").unwrap_err(),
        );
        assert!(decode.decode_error().is_some());
        assert!(
            decode
                .to_string()
                .starts_with("read IPPool p: the object is not what")
        );
        let unconditional = RequestError::missing_resource_version("replace IPPool p");
        assert!(unconditional.to_string().contains("resourceVersion"));
        assert_eq!(unconditional.status_code(), None);
    }
}
