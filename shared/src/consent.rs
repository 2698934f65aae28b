//! Consent scopes (DESIGN rule 3). Each is given or withdrawn on its own.

use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ConsentScope {
    /// The national server may use resident data to learn where I live.
    AddressLinkage,
    /// Send me job notices.
    JobSupport,
    /// Send me training notices.
    TrainingInfo,
    /// The nurse center where I live may receive my contact details.
    ShareWithResidencePrefecture,
}

impl ConsentScope {
    pub const ALL: [Self; 4] =
        [Self::AddressLinkage, Self::JobSupport, Self::TrainingInfo, Self::ShareWithResidencePrefecture];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AddressLinkage => "address_linkage",
            Self::JobSupport => "job_support",
            Self::TrainingInfo => "training_info",
            Self::ShareWithResidencePrefecture => "share_with_residence_prefecture",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn title_ja(self) -> &'static str {
        match self {
            Self::AddressLinkage => "住所情報の連携",
            Self::JobSupport => "求人情報のお知らせ",
            Self::TrainingInfo => "研修情報のお知らせ",
            Self::ShareWithResidencePrefecture => "お住まいの都道府県ナースセンターへの連絡先提供",
        }
    }

    /// Whether this scope lets the nurse be counted as latent (DESIGN flow 4).
    pub fn wants_notices(self) -> bool {
        matches!(self, Self::JobSupport | Self::TrainingInfo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_by_name() {
        for s in ConsentScope::ALL {
            assert_eq!(ConsentScope::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
            assert!(!s.title_ja().is_empty());
        }
        assert_eq!(ConsentScope::parse("everything"), None);
        assert!(ConsentScope::JobSupport.wants_notices() && !ConsentScope::AddressLinkage.wants_notices());
    }
}
