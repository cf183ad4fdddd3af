//! The command line the HTTP examples share: `[ADDR]`, the limits and the
//! drain time.

use std::time::Duration;

use super::Limits;

/// What the shared flags set.
#[derive(Debug)]
pub struct Options {
    /// The address to listen on.
    pub addr: String,
    /// `--idle`, `--request-timeout` (seconds), `--max-body` (bytes),
    /// `--max-connections`.
    pub limits: Limits,
    /// `--drain` (seconds): how long connections get to finish after the
    /// stop signal.
    pub drain: Duration,
}

impl Options {
    /// Parses the process's arguments. A flag that is not one of the shared
    /// ones goes, with its value, to `extra`, which returns an error for a
    /// flag it does not know either.
    pub fn parse(
        default_addr: &str,
        mut extra: impl FnMut(&str, String) -> Result<(), String>,
    ) -> Result<Options, String> {
        let mut options = Options {
            addr: default_addr.to_owned(),
            limits: Limits::default(),
            drain: Duration::from_secs(5),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if !arg.starts_with("--") {
                options.addr = arg;
                continue;
            }
            let value = args.next().ok_or(format!("{arg} needs a value"))?;
            let seconds = || {
                value
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .ok_or(format!("{arg}: not a number of seconds: {value}"))
            };
            let number = || value.parse::<usize>().map_err(|e| format!("{arg}: {e}"));
            match arg.as_str() {
                "--drain" => options.drain = seconds()?,
                "--idle" => options.limits.idle_timeout = seconds()?,
                "--request-timeout" => options.limits.request_timeout = seconds()?,
                "--max-body" => options.limits.max_body_bytes = number()?,
                "--max-connections" => options.limits.max_connections = number()?,
                _ => extra(&arg, value)?,
            }
        }
        Ok(options)
    }
}
