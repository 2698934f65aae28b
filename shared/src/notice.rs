//! Notice kinds (DESIGN flow 2). Notices are append-only; the latest decides a nurse's status.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// 離職届: date left, reason, wish to return.
    Separation,
    /// 就業状況: employed or not, workplace type and municipality, weekly hours.
    EmploymentStatus,
    /// 変更届: name, address, contact.
    Change,
}

impl NoticeKind {
    pub const ALL: [Self; 3] = [Self::Separation, Self::EmploymentStatus, Self::Change];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Separation => "separation",
            Self::EmploymentStatus => "employment_status",
            Self::Change => "change",
        }
    }
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
    pub fn title_ja(self) -> &'static str {
        match self {
            Self::Separation => "離職届",
            Self::EmploymentStatus => "就業状況届",
            Self::Change => "変更届",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in NoticeKind::ALL {
            assert_eq!(NoticeKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(NoticeKind::Separation.title_ja(), "離職届");
        assert_eq!(NoticeKind::parse("resignation"), None);
    }
}
