//! Field-level validation results shared by every form and API that checks input: one wrong field
//! and what to tell the person, in Japanese, so pages can show it next to the field.

/// One wrong field, with what to tell the person in Japanese.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}
