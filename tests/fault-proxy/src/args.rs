//! The command line: three required options, parsed by hand (they are all there is).

use std::{ffi::OsString, path::PathBuf};

use anyhow::{Context as _, bail};
use http::Uri;

pub const HELP: &str =
    "usage: fault-proxy --upstream https://HOST:PORT --upstream-ca FILE --dir DIR

Serves HTTPS on 127.0.0.1 (certificate in DIR/proxy-ca.crt), forwards to the upstream API server
(trusting the PEM certificates in FILE), logs requests to DIR/requests.jsonl and takes fault
commands on standard input: latency MS | status CODE COUNT [RETRY_AFTER_SECONDS] | drop |
close-watches | cut on | cut off | reset.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `https://host:port` of the API server.
    pub upstream: Uri,
    /// PEM certificates the API server's certificate must chain to.
    pub upstream_ca: PathBuf,
    /// Where the proxy's certificate and request log go.
    pub dir: PathBuf,
}

impl Args {
    /// The options, or None when help was asked for.
    pub fn parse(mut words: impl Iterator<Item = OsString>) -> anyhow::Result<Option<Args>> {
        let (mut upstream, mut upstream_ca, mut dir) = (None, None, None);
        while let Some(word) = words.next() {
            let slot = match word.to_str() {
                Some("--help" | "-h") => return Ok(None),
                Some("--upstream") => &mut upstream,
                Some("--upstream-ca") => &mut upstream_ca,
                Some("--dir") => &mut dir,
                _ => bail!("unexpected argument {word:?}\n{HELP}"),
            };
            let value = words
                .next()
                .with_context(|| format!("{word:?} needs a value\n{HELP}"))?;
            *slot = Some(value);
        }
        let missing = |name: &str| format!("{name} is required\n{HELP}");
        let upstream = upstream.with_context(|| missing("--upstream"))?;
        let upstream: Uri = upstream
            .to_str()
            .with_context(|| format!("--upstream {upstream:?} is not UTF-8"))?
            .parse()
            .with_context(|| format!("--upstream {upstream:?} is not a URL"))?;
        if upstream.scheme_str() != Some("https") || upstream.authority().is_none() {
            bail!("--upstream {upstream} is not https://HOST:PORT");
        }
        Ok(Some(Args {
            upstream,
            upstream_ca: upstream_ca
                .with_context(|| missing("--upstream-ca"))?
                .into(),
            dir: dir.with_context(|| missing("--dir"))?.into(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> anyhow::Result<Option<Args>> {
        Args::parse(words.iter().map(OsString::from))
    }

    #[test]
    fn takes_the_three_options() {
        let args = parse(&[
            "--upstream",
            "https://127.0.0.1:6443",
            "--upstream-ca",
            "ca.crt",
            "--dir",
            "d",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(args.upstream, "https://127.0.0.1:6443");
        assert_eq!(args.upstream_ca, PathBuf::from("ca.crt"));
        assert_eq!(args.dir, PathBuf::from("d"));
    }

    #[test]
    fn refuses_plain_http_and_missing_options() {
        let plain = [
            "--upstream",
            "http://x:1",
            "--upstream-ca",
            "c",
            "--dir",
            "d",
        ];
        assert!(parse(&plain).is_err());
        assert!(parse(&["--upstream", "https://x:1", "--dir", "d"]).is_err());
        assert!(parse(&["--upstream"]).is_err());
        assert!(parse(&["--help"]).unwrap().is_none());
    }
}
