//! Staging and production only: the manifests must carry the platform's authentication and TLS
//! settings (docs/security.md). A NATS client container connects with a user, a password file
//! and a CA file; no container turns the BFF's authentication off and the BFF names its tokens
//! file; a nats.conf requires TLS and has users.

use serde_json::Value;

use crate::Document;
use crate::finding::Finding;
use crate::manifests::ManifestSet;
use crate::path::FieldPath;
use crate::pods::PodTemplate;
use crate::rules;

/// Environments that must run secured.
pub fn required_in(environment: &str) -> bool {
    matches!(environment, "staging" | "production")
}

/// What a NATS client needs: a user (a fixed name, or the file it travels in with the
/// password, which a credential rotation needs), the password file and the CA file.
const NATS_CLIENT_VARS: [&[&str]; 3] = [
    &["NATS_USER_FILE", "NATS_USER"],
    &["NATS_PASSWORD_FILE"],
    &["NATS_CA_FILE"],
];

/// Every security-settings finding of the set.
pub fn check(set: &ManifestSet<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for object in &set.objects {
        let doc = &object.doc;
        if let Some(pod) = PodTemplate::of(doc) {
            for c in pod.containers() {
                let env = c.value.get("env").and_then(Value::as_array);
                let names: Vec<&str> = env
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.get("name").and_then(Value::as_str))
                    .collect();
                let at = c.path.clone().key("env");
                if names.contains(&"NATS_URL") {
                    let missing: Vec<_> = NATS_CLIENT_VARS
                        .iter()
                        .filter(|any| !any.iter().any(|v| names.contains(v)))
                        .map(|any| any.join(" or "))
                        .collect();
                    if !missing.is_empty() {
                        out.push(rules::SECURITY_NATS_CLIENT.at(
                            doc,
                            at.clone(),
                            format!(
                                "container {} connects to NATS without {}",
                                c.name,
                                missing.join(", ")
                            ),
                        ));
                    }
                }
                if names.contains(&"FLUO_BFF_INSECURE_NO_AUTH") {
                    out.push(rules::SECURITY_BFF_AUTH.at(
                        doc,
                        at.clone(),
                        format!("container {} sets FLUO_BFF_INSECURE_NO_AUTH", c.name),
                    ));
                }
                let image = c.value.get("image").and_then(Value::as_str).unwrap_or("");
                if image.contains("fluo-bff") && !names.contains(&"FLUO_BFF_AUTH_TOKENS_FILE") {
                    out.push(rules::SECURITY_BFF_AUTH.at(
                        doc,
                        at,
                        format!(
                            "container {} ({image}) has no FLUO_BFF_AUTH_TOKENS_FILE",
                            c.name
                        ),
                    ));
                }
            }
        }
        nats_conf(doc, &mut out);
    }
    out
}

fn nats_conf(doc: &Document, out: &mut Vec<Finding>) {
    if (doc.api_version(), doc.kind()) != ("v1", "ConfigMap") {
        return;
    }
    let Some(conf) = doc.object["data"]["nats.conf"].as_str() else {
        return;
    };
    // Comments do not count as settings.
    let settings: String = conf
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut missing = Vec::new();
    if !settings.contains("tls {") && !settings.contains("tls:") {
        missing.push("tls block");
    }
    if !settings.contains("authorization") && !settings.contains("include") {
        missing.push("users (authorization block or its include)");
    }
    if !missing.is_empty() {
        out.push(rules::SECURITY_NATS_SERVER.at(
            doc,
            FieldPath::root().key("data").key("nats.conf"),
            format!("nats.conf has no {}", missing.join(" and ")),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(yaml: &str) -> Vec<String> {
        let docs = fluo_core::manifest::parse_str(std::path::Path::new("m.yaml"), yaml).unwrap();
        let set = ManifestSet::new("fluo", vec![("bff".to_string(), docs)]);
        check(&set)
            .into_iter()
            .map(|f| format!("{}: {}", f.rule, f.message))
            .collect()
    }

    const SECURED: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: fluo-bff\nspec:\n  template:\n    spec:\n      containers:\n        - name: fluo-bff\n          image: fluo/fluo-bff:1\n          env:\n            - {name: NATS_URL, value: tls://nats:4222}\n            - {name: NATS_USER_FILE, value: /u}\n            - {name: NATS_PASSWORD_FILE, value: /p}\n            - {name: NATS_CA_FILE, value: /ca}\n            - {name: FLUO_BFF_AUTH_TOKENS_FILE, value: /t}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nats-config\ndata:\n  nats.conf: |\n    include \"../nats-auth/authorization.conf\"\n    tls {\n      cert_file: /c\n    }\n";

    #[test]
    fn the_secured_settings_pass_and_each_missing_one_is_named() {
        assert_eq!(findings(SECURED), Vec::<String>::new());
        // A fixed user name is accepted too.
        let fixed = SECURED.replace("NATS_USER_FILE, value: /u", "NATS_USER, value: bff");
        assert_eq!(findings(&fixed), Vec::<String>::new());
        let open = SECURED
            .replace("            - {name: NATS_CA_FILE, value: /ca}\n", "")
            .replace("            - {name: NATS_USER_FILE, value: /u}\n", "")
            .replace(
                "{name: FLUO_BFF_AUTH_TOKENS_FILE, value: /t}",
                "{name: FLUO_BFF_INSECURE_NO_AUTH, value: \"true\"}",
            )
            .replace("    tls {\n      cert_file: /c\n    }\n", "    # tls {\n");
        assert_eq!(
            findings(&open),
            vec![
                "security.nats-client: container fluo-bff connects to NATS without NATS_USER_FILE or NATS_USER, NATS_CA_FILE",
                "security.bff-auth: container fluo-bff sets FLUO_BFF_INSECURE_NO_AUTH",
                "security.bff-auth: container fluo-bff (fluo/fluo-bff:1) has no FLUO_BFF_AUTH_TOKENS_FILE",
                "security.nats-server: nats.conf has no tls block",
            ]
        );
    }
}
