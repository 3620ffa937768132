//! The control commands, and the faults that apply per request: latency and injected statuses.
//! (Faults on connections — drop, cut — live in `connections`; ending watches in `watch_body`.)

use std::{collections::VecDeque, str::FromStr, time::Duration};

use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Bytes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Latency(Duration),
    Status(Injection),
    Drop,
    CloseWatches,
    Cut(bool),
    Reset,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command: {0}")]
    Unknown(String),
    #[error("{problem} (usage: {usage})")]
    Usage {
        problem: String,
        usage: &'static str,
    },
}

impl FromStr for Command {
    type Err = CommandError;

    fn from_str(line: &str) -> Result<Command, CommandError> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&name, args)) = words.split_first() else {
            return Err(CommandError::Unknown(String::new()));
        };
        let usage = match name {
            "latency" => "latency MS",
            "status" => "status CODE COUNT [RETRY_AFTER_SECONDS]",
            "drop" => "drop",
            "close-watches" => "close-watches",
            "cut" => "cut on|off",
            "reset" => "reset",
            _ => return Err(CommandError::Unknown(line.trim().to_owned())),
        };
        let arity = match name {
            "latency" => 1..=1,
            "status" => 2..=3,
            "cut" => 1..=1,
            _ => 0..=0,
        };
        if !arity.contains(&args.len()) {
            return Err(CommandError::Usage {
                problem: format!("{name} takes {} argument(s)", describe(&arity)),
                usage,
            });
        }
        let number = |word: &str, what: &str| {
            word.parse::<u64>().map_err(|_| CommandError::Usage {
                problem: format!("{what} {word:?} is not a whole number"),
                usage,
            })
        };
        Ok(match name {
            "latency" => Command::Latency(Duration::from_millis(number(args[0], "MS")?)),
            "status" => {
                let code = StatusCode::from_u16(
                    u16::try_from(number(args[0], "CODE")?).unwrap_or(u16::MAX),
                )
                .ok()
                // A fault is a refusal: a 1xx-3xx code would not be one, and hyper cannot send 1xx.
                .filter(|code| code.is_client_error() || code.is_server_error())
                .ok_or_else(|| CommandError::Usage {
                    problem: format!("CODE {:?} is not an HTTP error status (400-599)", args[0]),
                    usage,
                })?;
                let count = number(args[1], "COUNT")?;
                if count == 0 {
                    return Err(CommandError::Usage {
                        problem: "COUNT must be at least 1".to_owned(),
                        usage,
                    });
                }
                let retry_after = args
                    .get(2)
                    .map(|word| number(word, "RETRY_AFTER_SECONDS"))
                    .transpose()?;
                Command::Status(Injection {
                    code,
                    count,
                    retry_after,
                })
            }
            "drop" => Command::Drop,
            "close-watches" => Command::CloseWatches,
            "cut" => match args[0] {
                "on" => Command::Cut(true),
                "off" => Command::Cut(false),
                other => {
                    return Err(CommandError::Usage {
                        problem: format!("{other:?} is neither on nor off"),
                        usage,
                    });
                }
            },
            _ => Command::Reset,
        })
    }
}

fn describe(arity: &std::ops::RangeInclusive<usize>) -> String {
    if arity.start() == arity.end() {
        arity.start().to_string()
    } else {
        format!("{} to {}", arity.start(), arity.end())
    }
}

/// `status CODE COUNT [RETRY_AFTER_SECONDS]`: the next COUNT requests get CODE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    pub code: StatusCode,
    pub count: u64,
    pub retry_after: Option<u64>,
}

/// The answer one request gets instead of being forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub code: StatusCode,
    pub retry_after: Option<u64>,
}

impl Refusal {
    /// The Kubernetes `Status` the API server itself would send for this code, so that clients take
    /// the path they take for a real refusal (kube retries 429 and 503 with `Retry-After`).
    pub fn response(&self) -> Response<Full<Bytes>> {
        let code = self.code.as_u16();
        let mut status = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": format!("fault-proxy: injected {code}"),
            "reason": reason(self.code),
            "code": code,
        });
        if let Some(seconds) = self.retry_after {
            status["details"] = serde_json::json!({ "retryAfterSeconds": seconds });
        }
        let mut response = Response::new(Full::new(Bytes::from(status.to_string())));
        *response.status_mut() = self.code;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// `metav1.StatusReason` for the codes the API server sends; empty (`StatusReasonUnknown`) else.
fn reason(code: StatusCode) -> &'static str {
    match code.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

/// Latency and the queue of injected statuses; `reset` clears both.
#[derive(Debug, Default)]
pub struct Faults {
    latency: Duration,
    /// Front first; each entry answers `count` more requests.
    injections: VecDeque<Injection>,
}

impl Faults {
    pub fn latency(&self) -> Duration {
        self.latency
    }

    pub fn set_latency(&mut self, latency: Duration) {
        self.latency = latency;
    }

    /// Queues after what is already queued, so that `status 503 1` then `status 429 1` answer
    /// the next two requests in that order.
    pub fn inject(&mut self, injection: Injection) {
        self.injections.push_back(injection);
    }

    /// The refusal for the request that has just arrived, if one is queued.
    pub fn next_refusal(&mut self) -> Option<Refusal> {
        let front = self.injections.front_mut()?;
        let refusal = Refusal {
            code: front.code,
            retry_after: front.retry_after,
        };
        front.count -= 1;
        if front.count == 0 {
            self.injections.pop_front();
        }
        Some(refusal)
    }

    pub fn reset(&mut self) {
        *self = Faults::default();
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    #[test]
    fn parses_each_command() {
        let parse = |line: &str| line.parse::<Command>();
        assert_eq!(
            parse("latency 500"),
            Ok(Command::Latency(Duration::from_millis(500)))
        );
        assert_eq!(
            parse(" status 429 2 1 "),
            Ok(Command::Status(Injection {
                code: StatusCode::TOO_MANY_REQUESTS,
                count: 2,
                retry_after: Some(1),
            }))
        );
        assert_eq!(parse("drop"), Ok(Command::Drop));
        assert_eq!(parse("close-watches"), Ok(Command::CloseWatches));
        assert_eq!(parse("cut on"), Ok(Command::Cut(true)));
        assert_eq!(parse("cut off"), Ok(Command::Cut(false)));
        assert_eq!(parse("reset"), Ok(Command::Reset));
    }

    #[test]
    fn refuses_bad_input_with_a_message() {
        let message = |line: &str| line.parse::<Command>().unwrap_err().to_string();
        assert_eq!(message("frobnicate 3"), "unknown command: frobnicate 3");
        assert!(message("latency").contains("usage: latency MS"));
        assert!(message("latency -1").contains("not a whole number"));
        assert!(message("status 200 1").contains("400-599"));
        assert!(message("status 99999 1").contains("400-599"));
        assert!(message("status 503 0").contains("at least 1"));
        assert!(message("cut maybe").contains("neither on nor off"));
        assert!(message("drop now").contains("takes 0"));
    }

    #[test]
    fn injections_answer_requests_in_order() {
        let mut faults = Faults::default();
        for (code, count) in [(503, 1), (429, 2)] {
            faults.inject(Injection {
                code: StatusCode::from_u16(code).unwrap(),
                count,
                retry_after: None,
            });
        }
        let codes: Vec<Option<u16>> = (0..4)
            .map(|_| faults.next_refusal().map(|r| r.code.as_u16()))
            .collect();
        assert_eq!(codes, [Some(503), Some(429), Some(429), None]);
    }

    #[tokio::test]
    async fn a_refusal_is_a_kubernetes_status() {
        let response = Refusal {
            code: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(3),
        }
        .response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            status,
            serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "fault-proxy: injected 429", "reason": "TooManyRequests", "code": 429,
                "details": { "retryAfterSeconds": 3 },
            })
        );
    }
}
