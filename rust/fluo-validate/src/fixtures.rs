//! Every manifest rule with a failing and a passing fixture. The passing base is a small but
//! complete, hardened app; each failing fixture breaks exactly one thing in it.

use std::path::Path;

use crate::finding::Finding;
use crate::manifests::ManifestSet;
use crate::policy::PolicySettings;
use crate::rules::{self, Rule};
use crate::{crossref, policy, schema};

const BASE: &str = r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  LOG_LEVEL: info
  UPSTREAM_URL: http://api.fluo.svc.cluster.local:8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    fluo.dev/external-secrets: web-token
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      serviceAccountName: web
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        seccompProfile:
          type: RuntimeDefault
      volumes:
      - name: tmp
        emptyDir: {}
      containers:
      - name: web
        image: fluo/web:1.0
        ports:
        - name: http
          containerPort: 8080
        envFrom:
        - configMapRef:
            name: web-config
        env:
        - name: MODE
          value: fast
        - name: API_TOKEN
          valueFrom:
            secretKeyRef:
              name: web-token
              key: token
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities:
            drop: [ALL]
        resources:
          requests: {cpu: 100m, memory: 64Mi}
          limits: {cpu: 500m, memory: 128Mi}
        livenessProbe:
          httpGet: {path: /health, port: http}
        readinessProbe:
          tcpSocket: {port: 8080}
        volumeMounts:
        - name: tmp
          mountPath: /tmp
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: http
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web
spec:
  podSelector:
    matchLabels: {app: web}
  policyTypes: [Ingress]
  ingress:
  - ports:
    - port: 8080
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: web}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
spec:
  rules:
  - host: web.localhost
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port: {name: http}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: web
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: web
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: web
subjects:
- kind: ServiceAccount
  name: web
"#;

const STATEFULSET: &str = r#"---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db-headless
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      securityContext:
        runAsNonRoot: true
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: db
        image: fluo/db@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        resources:
          requests: {cpu: 100m, memory: 64Mi}
          limits: {cpu: 500m, memory: 128Mi}
        ports:
        - {name: db, containerPort: 5432}
        livenessProbe: {tcpSocket: {port: db}}
        readinessProbe: {tcpSocket: {port: db}}
"#;

const DB_SERVICE: &str = "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: db-headless\nspec:\n  clusterIP: None\n  selector: {app: db}\n  ports:\n  - {name: db, port: 5432, targetPort: db}\n";

/// The base with `from` replaced by `to`; panics if `from` is absent so that a fixture never
/// silently stays the same as the base.
fn base_with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "fixture edit {from:?} does not apply");
    BASE.replacen(from, to, 1)
}

const STRICT: PolicySettings = PolicySettings {
    allow_inline_secrets: false,
};

/// All offline manifest findings (schema, cross-references, policy) for inline YAML.
pub fn offline_findings(yaml: &str, settings: PolicySettings) -> Vec<Finding> {
    let docs = fluo_core::manifest::parse_str(Path::new("m.yaml"), yaml).expect("fixture parses");
    let set = ManifestSet::new("fluo", vec![("web".to_string(), docs)]);
    let mut findings: Vec<Finding> = set
        .objects
        .iter()
        .flat_map(|o| schema::check(&o.doc))
        .collect();
    findings.extend(crossref::check(&set));
    findings.extend(policy::check(&set, settings));
    findings
}

struct Case {
    rule: Rule,
    failing: String,
    passing: String,
}

fn case(rule: Rule, failing: String) -> Case {
    Case {
        rule,
        failing,
        passing: BASE.to_string(),
    }
}

/// Rules whose fixtures live with their own module (they are not about manifest content).
const TESTED_ELSEWHERE: &[(&str, &str)] = &[
    ("yaml.invalid", "load::tests"),
    ("image.scan", "scan::tests"),
    ("env.clean-git", "environment::tests"),
    ("env.context", "environment::tests"),
    ("cluster.reachable", "tests/validate (emulator)"),
    ("cluster.dry-run", "tests/validate (emulator)"),
    ("cluster.external-secret", "tests/validate (emulator)"),
    // Staging/production only; each missing setting is named in security.rs's unit tests.
    ("security.nats-client", "security::tests"),
    ("security.bff-auth", "security::tests"),
    ("security.nats-server", "security::tests"),
    // Runs the service binary; fluo-deploy's gate test runs the real one.
    ("service.config", "service_config::tests"),
];

fn cases() -> Vec<Case> {
    vec![
        case(rules::SCHEMA_UNKNOWN_KIND, base_with("kind: ServiceAccount", "kind: ServiceAcount")),
        case(rules::SCHEMA_UNKNOWN_FIELD, base_with("        image: fluo/web:1.0\n", "        image: fluo/web:1.0\n        imagePullPolicyy: Always\n")),
        case(rules::SCHEMA_INVALID, base_with("  minAvailable: 1\n", "  minAvailable: 1\n  maxUnavailable: [1]\n")),
        case(rules::REF_SERVICE_SELECTOR, base_with("  selector:\n    app: web\n", "  selector:\n    app: webb\n")),
        case(rules::REF_SERVICE_PORT, base_with("    targetPort: http\n", "    targetPort: https\n")),
        case(rules::REF_PROBE_PORT, base_with("tcpSocket: {port: 8080}", "tcpSocket: {port: 8081}")),
        case(rules::REF_CONFIGMAP, base_with("            name: web-config\n", "            name: web-conf\n")),
        case(rules::REF_SECRET, base_with("fluo.dev/external-secrets: web-token", "fluo.dev/external-secrets: other")),
        case(rules::REF_SERVICE_ACCOUNT, base_with("serviceAccountName: web", "serviceAccountName: webb")),
        case(rules::REF_INGRESS_BACKEND, base_with("port: {name: http}", "port: {name: https}")),
        case(rules::REF_NETWORK_POLICY_SELECTOR, base_with("  podSelector:\n    matchLabels: {app: web}\n", "  podSelector:\n    matchLabels: {app: api}\n")),
        case(rules::REF_PDB_SELECTOR, base_with("  minAvailable: 1\n  selector:\n    matchLabels: {app: web}\n", "  minAvailable: 1\n  selector:\n    matchLabels: {app: wb}\n")),
        case(rules::REF_ROLE, base_with("  kind: Role\n  name: web\n", "  kind: Role\n  name: missing\n")),
        Case {
            rule: rules::REF_STATEFULSET_SERVICE,
            failing: format!("{BASE}{STATEFULSET}"),
            passing: format!("{BASE}{STATEFULSET}{DB_SERVICE}"),
        },
        case(rules::IMAGE_PINNED, base_with("image: fluo/web:1.0", "image: fluo/web:latest")),
        Case {
            rule: rules::IMAGE_PINNED,
            failing: base_with("image: fluo/web:1.0", "image: registry.local:5000/fluo/web"),
            passing: base_with("image: fluo/web:1.0", "image: registry.local:5000/fluo/web:1.0"),
        },
        case(rules::POD_RUN_AS_NON_ROOT, base_with("        runAsNonRoot: true\n", "")),
        case(rules::POD_RUN_AS_NON_ROOT, base_with("runAsUser: 65532", "runAsUser: 0")),
        case(rules::POD_PRIVILEGE_ESCALATION, base_with("allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true")),
        case(rules::POD_CAPABILITIES, base_with("drop: [ALL]", "drop: [NET_RAW]")),
        Case {
            rule: rules::POD_CAPABILITIES,
            failing: base_with("drop: [ALL]", "drop: [ALL]\n            add: [SYS_ADMIN]"),
            passing: base_with("drop: [ALL]", "drop: [ALL]\n            add: [NET_BIND_SERVICE]"),
        },
        case(rules::POD_SECCOMP, base_with("type: RuntimeDefault", "type: Unconfined")),
        case(rules::POD_READ_ONLY_ROOT_FS, base_with("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")),
        case(rules::POD_PRIVILEGED, base_with("allowPrivilegeEscalation: false\n", "allowPrivilegeEscalation: false\n          privileged: true\n")),
        case(rules::POD_HOST_NAMESPACES, base_with("      serviceAccountName: web\n", "      serviceAccountName: web\n      hostNetwork: true\n")),
        case(rules::POD_HOST_PATH, base_with("        emptyDir: {}\n", "        hostPath: {path: /var/run}\n")),
        case(rules::POD_RESOURCES, base_with("          limits: {cpu: 500m, memory: 128Mi}\n", "")),
        case(rules::POD_PROBES, base_with("        readinessProbe:\n          tcpSocket: {port: 8080}\n", "")),
        case(rules::RBAC_WILDCARD, base_with("verbs: [get, list]", "verbs: [\"*\"]")),
        case(rules::RBAC_CLUSTER_ADMIN, base_with("  kind: Role\n  name: web\n", "  kind: ClusterRole\n  name: cluster-admin\n")),
        Case {
            rule: rules::RBAC_SECRETS_ACCESS,
            failing: base_with("resources: [configmaps]", "resources: [configmaps, secrets]"),
            passing: base_with("resources: [configmaps]", "resources: [configmaps, secrets]")
                .replacen("kind: Role\nmetadata:\n  name: web\n", "kind: Role\nmetadata:\n  name: web\n  annotations:\n    fluo.dev/secrets-access: reads its own token\n", 1),
        },
        case(rules::SECRET_IN_CONFIGMAP, base_with("  LOG_LEVEL: info\n", "  LOG_LEVEL: info\n  DB_PASSWORD: PLANTED-hunter2-value\n")),
        case(rules::SECRET_IN_CONFIGMAP, base_with("  LOG_LEVEL: info\n", "  LOG_LEVEL: info\n  settings.ini: |\n    key = PLANTEDq8Zr2LxV0pWn5TfKc7Ym3HsB\n")),
        case(rules::SECRET_IN_ENV, base_with("          value: fast\n", "          value: fast\n        - name: UPSTREAM\n          value: https://admin:PLANTED-pw@api.example.com\n")),
        case(rules::SECRET_IN_ANNOTATION, base_with("    fluo.dev/external-secrets: web-token\n", "    fluo.dev/external-secrets: web-token\n    ci/token: ghp_PLANTEDabcdefghijklmnopqrstuvwxyz0123456\n")),
        Case {
            rule: rules::SECRET_INLINE,
            failing: format!("{BASE}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: web-token\nstringData:\n  token: PLANTED-inline\n"),
            passing: format!("{BASE}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: web-token\ntype: Opaque\n"),
        },
        case(rules::NETWORK_POLICY_DEFAULT_DENY, base_with("  podSelector: {}\n  policyTypes: [Ingress, Egress]\n", "  podSelector: {}\n  policyTypes: [Ingress, Egress]\n  ingress:\n  - {}\n")),
    ]
}

#[test]
fn the_base_fixture_passes_every_rule() {
    let findings = offline_findings(BASE, STRICT);
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn every_rule_has_a_failing_and_a_passing_fixture() {
    let cases = cases();
    for rule in rules::ALL {
        let covered = cases.iter().any(|c| c.rule.id == rule.id)
            || TESTED_ELSEWHERE.iter().any(|(id, _)| *id == rule.id);
        assert!(covered, "rule {} has no fixture", rule.id);
    }
    for case in &cases {
        let id = case.rule.id;
        let failing = offline_findings(&case.failing, STRICT);
        let hits: Vec<_> = failing.iter().filter(|f| f.rule == id).collect();
        assert!(
            !hits.is_empty(),
            "{id}: failing fixture produced no {id} finding: {failing:#?}"
        );
        for hit in &hits {
            let location = hit.location.as_ref();
            assert!(
                location.is_some_and(|l| l.line > 0),
                "{id}: finding without a line: {hit:?}"
            );
        }
        let passing = offline_findings(&case.passing, STRICT);
        assert!(
            passing.iter().all(|f| f.rule != id),
            "{id}: passing fixture still fails: {passing:#?}"
        );
        for finding in failing.iter().chain(&passing) {
            let text = format!("{finding} {}", serde_json::to_string(finding).unwrap());
            assert!(
                !text.contains("PLANTED"),
                "{id}: a planted secret leaked: {text}"
            );
        }
    }
}

#[test]
fn inline_secrets_are_allowed_where_the_environment_says_so() {
    let yaml = format!(
        "{BASE}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: web-token\nstringData:\n  token: PLANTED\n"
    );
    let lenient = PolicySettings {
        allow_inline_secrets: true,
    };
    assert!(offline_findings(&yaml, lenient).is_empty());
    assert!(
        offline_findings(&yaml, STRICT)
            .iter()
            .any(|f| f.rule == "secret.inline")
    );
}

#[test]
fn findings_point_at_the_offending_line() {
    let yaml = base_with(
        "allowPrivilegeEscalation: false",
        "allowPrivilegeEscalation: true",
    );
    let findings = offline_findings(&yaml, STRICT);
    let f = findings
        .iter()
        .find(|f| f.rule == "pod.privilege-escalation")
        .unwrap();
    let line = f.location.as_ref().unwrap().line;
    assert_eq!(
        yaml.lines().nth(line - 1).unwrap().trim(),
        "allowPrivilegeEscalation: true"
    );
    assert_eq!(
        f.location
            .as_ref()
            .unwrap()
            .path
            .as_ref()
            .unwrap()
            .to_string(),
        "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation"
    );
}

#[test]
fn all_findings_are_listed_not_just_the_first() {
    let yaml = base_with("image: fluo/web:1.0", "image: fluo/web")
        .replacen(
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: false",
            1,
        )
        .replacen("verbs: [get, list]", "verbs: [\"*\"]", 1);
    let findings = offline_findings(&yaml, STRICT);
    let ids: Vec<_> = findings.iter().map(|f| f.rule).collect();
    for id in ["image.pinned", "pod.read-only-root-fs", "rbac.wildcard"] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
}
