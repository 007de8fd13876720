//! The anchor: each component's chain tip (revision and digest) kept outside the records, as an
//! annotation on the fluo-system namespace (`fluo.dev/anchor.<component>`), signed like the
//! records. Deleting or rewriting the newest record, or a component's whole history, leaves the
//! anchor pointing at something that is no longer there. It also keeps the digests of records
//! that retention removed from the middle of a chain, so the chain still verifies across them.

use serde::{Deserialize, Serialize};

use crate::state::signing::{Check, Signer, Trust};

pub const ANNOTATION_PREFIX: &str = "fluo.dev/anchor.";
/// The signature domain of anchors.
pub const DOMAIN: &str = "anchor";

/// The annotation key of `component`'s anchor.
pub fn annotation_key(component: &str) -> String {
    format!("{ANNOTATION_PREFIX}{component}")
}

/// A record retention removed from the middle of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pruned {
    pub revision: u32,
    pub digest: String,
    pub prev_digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The newest revision written.
    pub revision: u32,
    /// Its digest.
    pub digest: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<Pruned>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Anchor {
    pub fn new(revision: u32, digest: &str) -> Anchor {
        Anchor {
            revision,
            digest: digest.to_string(),
            pruned: Vec::new(),
            signature: None,
        }
    }

    pub fn parse(text: &str) -> Result<Anchor, String> {
        serde_json::from_str(text).map_err(|e| format!("anchor is not valid: {e}"))
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The digest signed: component, tip and pruned entries (not the signature itself).
    pub fn signed_digest(&self, component: &str) -> String {
        let body = serde_json::json!({
            "component": component,
            "revision": self.revision,
            "digest": self.digest,
            "pruned": self.pruned,
        });
        crate::release::digest_of_json(body.to_string().as_bytes())
    }

    /// (Re)signs with `signer`, or drops the signature without one.
    pub fn sign(&mut self, component: &str, signer: Option<&Signer>) {
        self.signature = signer.map(|s| s.sign(DOMAIN, &self.signed_digest(component)));
    }

    pub fn check(&self, component: &str, trust: &Trust) -> Check {
        trust.check(
            DOMAIN,
            &self.signed_digest(component),
            self.signature.as_deref(),
        )
    }

    /// Drops pruned entries below `oldest` (the oldest record still stored): the chain starts
    /// there, so they link nothing any more.
    pub fn forget_below(&mut self, oldest: u32) {
        self.pruned.retain(|p| p.revision >= oldest);
    }

    /// The line printed at the end of every deploy (so CI logs hold the tip).
    pub fn line(&self, component: &str) -> String {
        format!(
            "anchor {component} v{} sha256:{}",
            self.revision, self.digest
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::signing::tests::{signer, trust_in};

    #[test]
    fn signed_anchor_detects_edits() {
        let alice = signer(1, "alice");
        let trust = trust_in(&alice, false);
        let mut anchor = Anchor::new(3, "d3");
        anchor.sign("bff", Some(&alice));
        let text = anchor.to_text();
        let back = Anchor::parse(&text).unwrap();
        assert!(matches!(back.check("bff", &trust), Check::Valid { .. }));
        assert!(
            matches!(back.check("workers", &trust), Check::Invalid(_)),
            "an anchor of one component does not vouch for another"
        );
        let mut moved = back.clone();
        moved.revision = 2;
        assert!(matches!(moved.check("bff", &trust), Check::Invalid(_)));
        assert!(Anchor::parse("{").is_err());
        assert_eq!(annotation_key("bff"), "fluo.dev/anchor.bff");
        assert_eq!(back.line("bff"), "anchor bff v3 sha256:d3");
    }

    #[test]
    fn forget_below_keeps_entries_still_linking() {
        let mut anchor = Anchor::new(9, "d9");
        for r in [2, 5, 7] {
            anchor.pruned.push(Pruned {
                revision: r,
                digest: format!("d{r}"),
                prev_digest: None,
            });
        }
        anchor.forget_below(5);
        assert_eq!(
            anchor.pruned.iter().map(|p| p.revision).collect::<Vec<_>>(),
            [5, 7]
        );
    }
}
