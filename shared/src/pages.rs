//! What the pages of both binaries share besides their templates' kit (`shared/templates`): the
//! one stylesheet. It is a file, not an inline `<style>`, so the content security policy can
//! forbid inline styles.

/// `/assets/site.css` at the nodes and the national server.
pub const STYLESHEET: &str = include_str!("../assets/site.css");
