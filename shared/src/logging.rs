//! The one log setup of both binaries: human-readable lines on stderr, filtered by `RUST_LOG`,
//! with every valid My Number masked.

use std::ffi::OsString;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the process's subscriber: stderr, `RUST_LOG` or else `default_filter`. Colour codes
/// only when stderr is a terminal and `NO_COLOR` is unset or empty (<https://no-color.org>): files,
/// pipes and journald would otherwise keep the escape sequences as text.
pub fn init(default_filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into()))
        // Logs may quote outside data (an import row, a request): no My Number reaches them in
        // clear (rule 1).
        .with_writer(|| crate::mynumber::MaskingWriter(std::io::stderr()))
        .with_ansi(colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR")))
        .init();
}

fn colour(terminal: bool, no_color: Option<OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())), "an empty NO_COLOR does not count");
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
        assert!(!colour(false, Some("1".into())));
    }
}
