//! The rule catalogue: every finding the gate can produce names one of these rules, with a
//! stable id, what it checks and how to fix it. docs/validate.md lists the same catalogue (a test
//! keeps them in sync).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub id: &'static str,
    pub summary: &'static str,
    pub fix: &'static str,
}

macro_rules! rules {
    ($($name:ident = $id:literal, $summary:literal, $fix:literal;)*) => {
        $(pub const $name: Rule = Rule { id: $id, summary: $summary, fix: $fix };)*
        /// Every rule, in catalogue order.
        pub const ALL: &[Rule] = &[$($name),*];
    };
}

rules! {
    // Manifest loading and schema.
    YAML_INVALID = "yaml.invalid",
        "every manifest file parses as YAML and each document is an object with apiVersion, kind and metadata.name",
        "fix the YAML syntax at the reported line";
    SCHEMA_UNKNOWN_KIND = "schema.unknown-kind",
        "every apiVersion/kind is one the gate knows the schema of",
        "use a supported apiVersion (e.g. apps/v1, networking.k8s.io/v1) or extend fluo-validate's schema table";
    SCHEMA_UNKNOWN_FIELD = "schema.unknown-field",
        "no field the Kubernetes schema does not define (typos are silently dropped by the API server)",
        "remove the field or fix its spelling/indentation";
    // Staging and production: authentication and TLS (docs/security.md).
    SECURITY_NATS_CLIENT = "security.nats-client",
        "in staging and production every NATS client container sets NATS_USER_FILE (or NATS_USER), NATS_PASSWORD_FILE and NATS_CA_FILE",
        "mount the nats-credentials and nats-tls Secrets and set the three variables (see the BFF and worker manifests)";
    SECURITY_BFF_AUTH = "security.bff-auth",
        "in staging and production the BFF names its API tokens file and nothing sets FLUO_BFF_INSECURE_NO_AUTH",
        "mount the Secret fluo-bff-api-tokens and set FLUO_BFF_AUTH_TOKENS_FILE; remove FLUO_BFF_INSECURE_NO_AUTH";
    SECURITY_NATS_SERVER = "security.nats-server",
        "in staging and production nats.conf requires TLS and defines users",
        "add the tls block and the include of the nats-auth Secret's authorization.conf";
    SERVICE_CONFIG = "service.config",
        "the BFF and worker containers pass the service's own configuration check (`--check-config=values` with their literal env and args)",
        "fix the value the message names (`fluo-bff --help`, `fluo-worker --help` list each setting)";
    SCHEMA_INVALID = "schema.invalid",
        "every field has the type the schema requires and required fields are present",
        "give the field the expected type, or add the missing required field";
    // Cross-references between objects.
    REF_SERVICE_SELECTOR = "ref.service-selector",
        "a Service selector matches the pod labels of some workload",
        "make spec.selector equal to (a subset of) the workload's spec.template.metadata.labels";
    REF_SERVICE_PORT = "ref.service-port",
        "a Service targetPort names or numbers a container port of the selected pods",
        "declare the port under the container's ports (with that name) or fix targetPort";
    REF_PROBE_PORT = "ref.probe-port",
        "a probe port names or numbers a port the container declares",
        "declare the port under the container's ports or fix the probe's port";
    REF_CONFIGMAP = "ref.configmap",
        "a referenced ConfigMap is in the manifests or declared external",
        "add the ConfigMap, mark the reference optional, or list it in the workload annotation fluo.dev/external-configmaps";
    REF_SECRET = "ref.secret",
        "a referenced Secret is in the manifests or declared external",
        "add the Secret, mark the reference optional, or list it in the workload annotation fluo.dev/external-secrets";
    REF_SERVICE_ACCOUNT = "ref.service-account",
        "a referenced ServiceAccount is in the manifests",
        "add the ServiceAccount to the component's manifests or fix serviceAccountName";
    REF_INGRESS_BACKEND = "ref.ingress-backend",
        "an Ingress backend names a Service in the manifests and a port that Service exposes",
        "fix the backend service name/port or add the Service";
    REF_NETWORK_POLICY_SELECTOR = "ref.network-policy-selector",
        "a NetworkPolicy podSelector selects the pods of some workload",
        "make spec.podSelector match a workload's pod labels (an empty selector selects all pods)";
    REF_PDB_SELECTOR = "ref.pdb-selector",
        "a PodDisruptionBudget selector selects the pods of some workload",
        "make spec.selector match the workload's pod labels";
    REF_ROLE = "ref.role",
        "a RoleBinding/ClusterRoleBinding refers to a Role/ClusterRole in the manifests or a built-in ClusterRole",
        "add the Role/ClusterRole or fix roleRef";
    REF_STATEFULSET_SERVICE = "ref.statefulset-service",
        "a StatefulSet serviceName names a Service in the manifests",
        "add the (headless) Service or fix spec.serviceName";
    // Security policy.
    IMAGE_PINNED = "image.pinned",
        "every image has an explicit tag or digest that is not `latest`",
        "pin the image to a version tag or a digest (name:1.2.3 or name@sha256:...)";
    POD_RUN_AS_NON_ROOT = "pod.run-as-non-root",
        "containers run as non-root (Pod Security restricted: runAsNonRoot true, runAsUser not 0)",
        "set securityContext.runAsNonRoot: true on the pod or container and do not set runAsUser: 0";
    POD_PRIVILEGE_ESCALATION = "pod.privilege-escalation",
        "containers set allowPrivilegeEscalation: false (Pod Security restricted)",
        "set securityContext.allowPrivilegeEscalation: false on every container";
    POD_CAPABILITIES = "pod.capabilities",
        "containers drop ALL capabilities and add at most NET_BIND_SERVICE (Pod Security restricted)",
        "set securityContext.capabilities.drop: [ALL] and remove other added capabilities";
    POD_SECCOMP = "pod.seccomp",
        "a seccomp profile RuntimeDefault or Localhost is set (Pod Security restricted)",
        "set securityContext.seccompProfile.type: RuntimeDefault on the pod";
    POD_READ_ONLY_ROOT_FS = "pod.read-only-root-fs",
        "containers have a read-only root filesystem",
        "set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where the process writes";
    POD_PRIVILEGED = "pod.privileged",
        "no privileged containers",
        "remove securityContext.privileged: true";
    POD_HOST_NAMESPACES = "pod.host-namespaces",
        "pods do not share the host's network, PID or IPC namespace",
        "remove hostNetwork/hostPID/hostIPC: true";
    POD_HOST_PATH = "pod.host-path",
        "pods mount no hostPath volumes",
        "use an emptyDir, ConfigMap, Secret or PersistentVolumeClaim volume instead";
    POD_RESOURCES = "pod.resources",
        "containers declare cpu and memory requests and limits",
        "set resources.requests.{cpu,memory} and resources.limits.{cpu,memory}";
    POD_PROBES = "pod.probes",
        "containers have liveness and readiness probes",
        "add livenessProbe and readinessProbe to the container";
    RBAC_WILDCARD = "rbac.wildcard",
        "RBAC rules name verbs, resources and API groups explicitly (no `*`)",
        "list the exact verbs, resources and apiGroups the subject needs";
    RBAC_CLUSTER_ADMIN = "rbac.cluster-admin",
        "nothing is bound to the cluster-admin ClusterRole",
        "bind a Role/ClusterRole with only the permissions needed";
    RBAC_SECRETS_ACCESS = "rbac.secrets-access",
        "roles do not grant access to Secrets unless declared",
        "remove secrets from the rule, or declare why with the annotation fluo.dev/secrets-access: \"<reason>\" on the Role/ClusterRole";
    SECRET_IN_CONFIGMAP = "secret.configmap",
        "ConfigMaps hold no secret-looking values (key names, known token formats, high entropy)",
        "move the value into a Secret (managed outside git) and reference it";
    SECRET_IN_ENV = "secret.env",
        "container env values hold no secret-looking literals",
        "use env.valueFrom.secretKeyRef instead of a literal value";
    SECRET_IN_ANNOTATION = "secret.annotation",
        "annotations and labels hold no secret-looking values",
        "remove the value from metadata; keep it in a Secret";
    SECRET_INLINE = "secret.inline",
        "Secrets with inline data/stringData are refused where [validation].allow_inline_secrets is false",
        "create the Secret out of band (declare it external with fluo.dev/external-secrets) instead of committing its data";
    NETWORK_POLICY_DEFAULT_DENY = "netpol.default-deny",
        "every namespace the manifests use has a default-deny NetworkPolicy (podSelector {}, no ingress rules)",
        "add a NetworkPolicy with podSelector: {} and policyTypes [Ingress, Egress] to the namespace";
    IMAGE_SCAN = "image.scan",
        "images have no HIGH/CRITICAL vulnerabilities (trivy or grype), and a scanner is installed where [validation].require_image_scan is true",
        "update the image to a fixed version, or install trivy or grype";
    // Environment and cluster.
    ENV_CLEAN_GIT = "env.clean-git",
        "the git tree is clean where [validation].require_clean_git is true",
        "commit or discard local changes before deploying to this environment";
    ENV_CONTEXT = "env.context",
        "the target kube context is the environment's [environment].context",
        "switch context (kubectl config use-context <context>) or pass --context";
    CLUSTER_REACHABLE = "cluster.reachable",
        "the target cluster answers",
        "check the kubeconfig, VPN and cluster health; use --offline for local checks without a cluster";
    CLUSTER_DRY_RUN = "cluster.dry-run",
        "every object passes a server-side dry-run apply (admission, quota, immutable fields)",
        "fix the object according to the API server's message";
    CLUSTER_EXTERNAL_SECRET = "cluster.external-secret",
        "every Secret declared external exists in the target namespace",
        "create the Secret in the cluster before deploying (kubectl create secret ...)";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_have_text() {
        let mut ids: Vec<_> = ALL.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), ALL.len());
        assert!(
            ALL.iter()
                .all(|r| !r.summary.is_empty() && !r.fix.is_empty())
        );
    }

    #[test]
    fn docs_catalogue_lists_every_rule() {
        let docs = include_str!("../../../docs/validate.md");
        for rule in ALL {
            assert!(
                docs.contains(&format!("`{}`", rule.id)),
                "docs/validate.md does not list rule {}",
                rule.id
            );
        }
    }
}
