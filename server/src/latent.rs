//! The latent rule (DESIGN flow 4, issue #7), in one place and free of storage so that it can be
//! read and table-tested as the rule itself.
//!
//! A person is **latent** when all of these hold:
//! - she holds a nursing licence that the registry lists as active and that has no ex-officio
//!   deletion (職権抹消) beside it;
//! - the resident data does not record her death;
//! - her latest notice *by effective date* (離職日, or the employment status's date) says she does
//!   not work as a nurse — ties go to the notice filed later, and a separation with no later
//!   employment notice counts;
//! - at her home link she wants job or training information (`job_support` or `training_info`).
//!
//! Effective dates decide, not filing order: an employer's bulk separation entered today with
//! last year's date does not override her own employment notice dated last month.

use chrono::{NaiveDate, NaiveDateTime};

/// One notice as the rule reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticeFact {
    pub effective_on: NaiveDate,
    pub filed_at: NaiveDateTime,
    pub working: bool,
}

/// Her employment status by her notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Employment {
    Working {
        since: NaiveDate,
    },
    NotWorking {
        since: NaiveDate,
    },
    /// No notice says anything about work.
    Unknown,
}

impl Employment {
    pub fn from_notices(notices: &[NoticeFact]) -> Self {
        match ncf_shared::notice::deciding(notices.iter().map(|n| (n.effective_on, n.filed_at, n.working))) {
            None => Self::Unknown,
            Some((since, _, true)) => Self::Working { since },
            Some((since, _, false)) => Self::NotWorking { since },
        }
    }

    /// Back from what [`Employment::as_str`] and [`Employment::since`] stored; `None` for a
    /// pair this code never writes.
    pub fn parse(kind: &str, since: Option<NaiveDate>) -> Option<Self> {
        match (kind, since) {
            ("working", Some(since)) => Some(Self::Working { since }),
            ("not_working", Some(since)) => Some(Self::NotWorking { since }),
            ("unknown", None) => Some(Self::Unknown),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Working { .. } => "working",
            Self::NotWorking { .. } => "not_working",
            Self::Unknown => "unknown",
        }
    }

    pub fn since(self) -> Option<NaiveDate> {
        match self {
            Self::Working { since } | Self::NotWorking { since } => Some(since),
            Self::Unknown => None,
        }
    }
}

/// Everything the rule needs about one person.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// At least one nursing licence active in the registry and not deleted ex officio.
    pub licence_in_force: bool,
    pub deceased: bool,
    pub notices: Vec<NoticeFact>,
    /// `job_support` or `training_info` given at her home link.
    pub wants_information: bool,
}

impl Facts {
    pub fn employment(&self) -> Employment {
        Employment::from_notices(&self.notices)
    }

    pub fn is_latent(&self) -> bool {
        self.licence_in_force
            && !self.deceased
            && self.wants_information
            && matches!(self.employment(), Employment::NotWorking { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn notice(effective: &str, filed: &str, working: bool) -> NoticeFact {
        NoticeFact {
            effective_on: day(effective),
            filed_at: day(filed).and_hms_opt(9, 0, 0).unwrap(),
            working,
        }
    }

    fn facts(notices: Vec<NoticeFact>) -> Facts {
        Facts { licence_in_force: true, deceased: false, notices, wants_information: true }
    }

    #[test]
    fn the_rule_as_a_table() {
        let separated = || vec![notice("2026-03-31", "2026-04-02", false)];
        // (case, facts, latent)
        let cases: Vec<(&str, Facts, bool)> = vec![
            ("separation, nothing later", facts(separated()), true),
            ("no notice at all", facts(vec![]), false),
            (
                "employment notice dated after the separation",
                facts(vec![
                    notice("2026-03-31", "2026-04-02", false),
                    notice("2026-06-01", "2026-06-03", true),
                ]),
                false,
            ),
            (
                "employer's separation filed later but dated before her employment notice",
                facts(vec![
                    notice("2026-06-01", "2026-06-03", true),
                    notice("2026-05-31", "2026-09-01", false),
                ]),
                false,
            ),
            (
                "separation dated after her employment notice",
                facts(vec![
                    notice("2026-06-01", "2026-06-03", true),
                    notice("2026-08-31", "2026-09-01", false),
                ]),
                true,
            ),
            (
                "employment status 'not working' alone",
                facts(vec![notice("2026-10-01", "2026-10-01", false)]),
                true,
            ),
            (
                "same effective date: the one filed later wins (working)",
                facts(vec![
                    notice("2026-07-01", "2026-07-01", false),
                    notice("2026-07-01", "2026-07-05", true),
                ]),
                false,
            ),
            (
                "same effective date: the one filed later wins (not working)",
                facts(vec![
                    notice("2026-07-01", "2026-07-01", true),
                    notice("2026-07-01", "2026-07-05", false),
                ]),
                true,
            ),
            ("licence not in force", Facts { licence_in_force: false, ..facts(separated()) }, false),
            ("deceased", Facts { deceased: true, ..facts(separated()) }, false),
            (
                "wants no job or training information",
                Facts { wants_information: false, ..facts(separated()) },
                false,
            ),
        ];
        for (case, facts, latent) in cases {
            assert_eq!(facts.is_latent(), latent, "{case}");
        }
    }

    #[test]
    fn employment_names_the_deciding_date() {
        let f =
            facts(vec![notice("2026-03-31", "2026-04-02", false), notice("2026-06-01", "2026-06-03", true)]);
        assert_eq!(f.employment(), Employment::Working { since: day("2026-06-01") });
        assert_eq!(f.employment().as_str(), "working");
        assert_eq!(facts(vec![]).employment(), Employment::Unknown);
    }
}
