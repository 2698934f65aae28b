//! Agency-specific codes (機関別符号, DESIGN rule 2): each node knows a person only by a code derived
//! for that node, `base32(HMAC-SHA-256(K, node_id ‖ person_id))`. The node id is the node's
//! prefecture code (one node per nurse center); the person id is the national `PersonKey`.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{PersonKey, Prefecture};

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(into = "String", try_from = "String")]
pub struct AgencyCode(String);

/// A code read from JSON is checked like any other input from elsewhere.
impl TryFrom<String> for AgencyCode {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
            .ok_or_else(|| format!("not an agency code: {} base32 characters expected", Self::LEN))
    }
}

impl From<AgencyCode> for String {
    fn from(code: AgencyCode) -> String {
        code.0
    }
}

impl AgencyCode {
    /// Length of a code: 256 bits in base32 without padding.
    pub const LEN: usize = 52;

    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Accepts a code received from elsewhere (a node's request), checking its shape only.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == Self::LEN
            && text.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)))
        .then(|| Self(text.to_string()))
    }
}

impl std::fmt::Debug for AgencyCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AgencyCode({}…)", &self.0[..8.min(self.0.len())])
    }
}
impl std::fmt::Display for AgencyCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone)]
pub struct AgencyCodeKey {
    keyed: Hmac<Sha256>,
}

impl AgencyCodeKey {
    pub fn new(key: &[u8; 32]) -> Self {
        Self { keyed: <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length") }
    }

    pub fn code_for(&self, node: Prefecture, person: &PersonKey) -> AgencyCode {
        let mut mac = self.keyed.clone();
        // Fixed-width fields, so the concatenation is unambiguous.
        mac.update(b"node:");
        mac.update(node.code().as_bytes());
        mac.update(person.as_bytes());
        AgencyCode(crate::encoding::base32(&mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pref(n: u8) -> Prefecture {
        Prefecture::from_code(&n.to_string()).unwrap()
    }

    #[test]
    fn codes_have_a_fixed_shape() {
        let code = AgencyCodeKey::new(&[3; 32]).code_for(pref(27), &PersonKey([9; 32]));
        assert_eq!(code.as_str().len(), AgencyCode::LEN);
        assert_eq!(AgencyCode::parse(code.as_str()), Some(code));
        assert_eq!(AgencyCode::parse("lowercase"), None);
    }

    proptest! {
        #[test]
        fn same_person_and_node_give_the_same_code(person in any::<[u8; 32]>(), node in 1u8..=47) {
            let key = AgencyCodeKey::new(&[5; 32]);
            prop_assert_eq!(key.code_for(pref(node), &PersonKey(person)), key.code_for(pref(node), &PersonKey(person)));
        }

        #[test]
        fn different_nodes_give_different_codes(person in any::<[u8; 32]>(), a in 1u8..=47, b in 1u8..=47) {
            prop_assume!(a != b);
            let key = AgencyCodeKey::new(&[5; 32]);
            prop_assert_ne!(key.code_for(pref(a), &PersonKey(person)), key.code_for(pref(b), &PersonKey(person)));
        }

        #[test]
        fn different_people_give_different_codes(p in any::<[u8; 32]>(), q in any::<[u8; 32]>(), node in 1u8..=47) {
            prop_assume!(p != q);
            let key = AgencyCodeKey::new(&[5; 32]);
            prop_assert_ne!(key.code_for(pref(node), &PersonKey(p)), key.code_for(pref(node), &PersonKey(q)));
        }

        #[test]
        fn codes_depend_on_the_secret(person in any::<[u8; 32]>(), node in 1u8..=47) {
            let a = AgencyCodeKey::new(&[1; 32]).code_for(pref(node), &PersonKey(person));
            let b = AgencyCodeKey::new(&[2; 32]).code_for(pref(node), &PersonKey(person));
            prop_assert_ne!(a, b);
        }
    }
}
