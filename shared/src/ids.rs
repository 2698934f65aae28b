//! Text id newtypes (UUIDv7: unique, and sortable by creation time). Stored as TEXT on both backends.

macro_rules! text_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

text_id!(
    /// One run of `import-registry` or `import-residents`; every registry and resident row names the
    /// import that last changed it (DESIGN rule 7).
    ImportId
);
text_id!(
    /// A nurse registered at a prefecture node (local id; other nodes know her by other codes).
    NurseId
);
text_id!(
    /// A notice, consent record or outbox event at a node.
    RecordId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_time_ordered() {
        let a = ImportId::new();
        let b = ImportId::new();
        assert_ne!(a, b);
        assert!(a < b);
        assert_eq!(a.as_str().len(), 36);
    }
}
