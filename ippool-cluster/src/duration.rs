//! kubectl's duration syntax, for the flags of both binaries (`--request-timeout`, `--timeout`,
//! `--shutdown-delay`): a bare number of seconds, or a number with `ms`, `s`, `m` or `h`.

use std::time::Duration;

/// Parses `text` as kubectl reads a duration.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| {
        format!(
            "'{text}' is not a duration; write it like 30s, 2m or 1h (a bare number is seconds)"
        )
    })?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{text}'; use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("'{text}' is longer than any duration this can wait"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert!(parse("soon").unwrap_err().contains("30s"));
        assert!(parse("3d").unwrap_err().contains("unknown unit 'd'"));
        assert!(
            parse("99999999999999999999999h")
                .unwrap_err()
                .contains("longer than"),
            "too long is an error, not a panic"
        );
    }
}
