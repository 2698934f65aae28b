//! Domain types and rules shared by the national server and the prefecture nodes.
//!
//! Every privacy rule (docs/architecture.md) that can be expressed as a pure function lives here, in one
//! obvious place: My Number handling, masking and keyed hashing (`mynumber`, rule 1), agency-code
//! derivation (`agency`, rule 2), consent scopes (`consent`, rule 3) and request signing
//! (`federation`, rule 6).
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod accounts;
pub mod agency;
pub mod cache;
pub mod consent;
pub mod contract;
pub mod csvfile;
pub mod db;
pub mod encoding;
pub mod federation;
pub mod figures;
pub mod ids;
pub mod licence;
pub mod logging;
pub mod mynumber;
pub mod normalize;
pub mod notice;
pub mod pages;
pub mod posting;
pub mod qualification;
pub mod region;
pub mod schedule;
pub mod sealed;
pub mod secret;
pub mod suppression;
pub mod time;
pub mod tls;
pub mod validation;
pub mod wareki;

pub use agency::{AgencyCode, AgencyCodeKey};
pub use consent::ConsentScope;
pub use licence::{LicenceStatus, PersonName, RegistrationNumber, Sex};
pub use mynumber::{MyNumber, MyNumberHasher, PersonKey, mask_my_numbers};
pub use notice::NoticeKind;
pub use qualification::Qualification;
pub use region::{Municipality, Prefecture};
