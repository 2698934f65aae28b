//! Errors of the node's services. Field errors carry a Japanese message for the pages.

pub use ncf_shared::validation::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("invalid input: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with the current state; the text is for the person (Japanese).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

impl ncf_shared::db::MaybeBusy for NodeError {
    fn is_busy(&self) -> bool {
        matches!(self, NodeError::Database(e) if e.is_busy())
    }
}
