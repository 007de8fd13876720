use super::*;

/// A throwaway infra tree: two components and one environment, editable per test.
struct Tree(tempfile::TempDir);

const NATS: &str = "[component]\nname = \"nats\"\nsop_order = 1\n\n[rollout]\ntimeout = \"2m\"\n\n\
[[images]]\nname = \"nats\"\nnix_package = \"image-nats\"\ndefault_ref = \"fluo/nats:2.10\"\n";
const BFF: &str = "[component]\nname = \"bff\"\nsop_order = 2\ndepends_on = [\"nats\"]\n\n[rollout]\ntimeout = \"90s\"\n\n\
[[health]]\nname = \"bff-health\"\nservice = \"fluo-bff\"\nport = 8080\npath = \"/health\"\n";
const LOCAL: &str = "[environment]\nname = \"local\"\ncontext = \"kube-emulator\"\nnamespace = \"fluo\"\n\n\
[replicas]\nbff = 2\n\n[access]\nmode = \"direct\"\n[access.urls]\nbff = \"http://127.0.0.1:8080\"\n\n\
[[windows]]\ndays = [\"Tue\", \"Wed\"]\nstart = \"09:00\"\nend = \"16:00\"\n\n\
[validation]\nrequire_clean_git = false\nallow_skip = true\nallow_inline_secrets = true\nrequire_image_scan = false\n\n\
[monitoring]\nduration = \"30m\"\ninterval = \"30s\"\nmax_error_ratio = 0.05\nmax_restarts = 3\nmax_backlog = 100\n";

impl Tree {
    fn new() -> Self {
        let tree = Tree(tempfile::tempdir().unwrap());
        tree.write("components/nats/component.toml", NATS);
        tree.write("components/bff/component.toml", BFF);
        tree.write(
            "components/bff/manifests/deploy.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: fluo-bff\n",
        );
        tree.write("environments/local.toml", LOCAL);
        tree
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    fn write(&self, rel: &str, text: &str) {
        let p = self.0.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    fn edit(&self, rel: &str, from: &str, to: &str) {
        let p = self.0.path().join(rel);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "fixture {rel} has no {from:?}");
        std::fs::write(p, text.replacen(from, to, 1)).unwrap();
    }
    fn load_err(&self) -> String {
        Config::load(self.path(), "local").unwrap_err().to_string()
    }
}

#[test]
fn loads_a_valid_tree() {
    let tree = Tree::new();
    let config = Config::load(tree.path(), "local").unwrap();
    assert_eq!(config.component_names(), ["nats", "bff"]);
    let bff = config.component("bff").unwrap();
    assert_eq!(bff.spec.rollout.timeout, Duration::from_secs(90));
    assert_eq!(bff.manifests.len(), 1);
    assert_eq!(bff.spec.health[0].port, 8080);
    assert_eq!(config.environment.replicas["bff"], 2);
    assert_eq!(config.environment.access.mode, AccessMode::Direct);
    assert_eq!(config.environment.strategy, Strategy::default());
    assert_eq!(config.graph.sequential_order(), ["nats", "bff"]);
    let window = &config.environment.windows[0];
    let tuesday_noon = "2026-11-24T12:00:00Z".parse().unwrap();
    let tuesday_late = "2026-11-24T16:00:00Z".parse().unwrap();
    let monday_noon = "2026-11-23T12:00:00Z".parse().unwrap();
    assert!(window.contains(tuesday_noon));
    assert!(!window.contains(tuesday_late));
    assert!(!window.contains(monday_noon));
}

#[test]
fn the_repository_infra_tree_loads_for_every_environment() {
    let infra = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra");
    for env in ["local", "rehearsal", "staging", "production"] {
        let config = Config::load(&infra, env).unwrap_or_else(|e| panic!("{env}: {e}"));
        assert_eq!(
            config.graph.sequential_order(),
            ["nats", "prometheus", "grafana", "bff", "workers"]
        );
        assert_eq!(config.environment.environment.name, env);
    }
}

#[test]
fn unknown_key_names_file_and_key() {
    let tree = Tree::new();
    tree.edit(
        "components/bff/component.toml",
        "sop_order = 2",
        "sop_order = 2\nreplica = 3",
    );
    let err = tree.load_err();
    assert!(err.contains("components/bff/component.toml"), "{err}");
    assert!(err.contains("unknown field `replica`"), "{err}");
    assert!(err.contains("line 4"), "{err}");
}

#[test]
fn unknown_key_in_environment_is_rejected() {
    let tree = Tree::new();
    tree.edit(
        "environments/local.toml",
        "[monitoring]",
        "[monitoring]\nmax_eror_ratio = 0.1",
    );
    let err = tree.load_err();
    assert!(
        err.contains("environments/local.toml") && err.contains("unknown field `max_eror_ratio`"),
        "{err}"
    );
}

#[test]
fn wrong_types_and_values_name_the_key() {
    let cases = [
        (
            "components/bff/component.toml",
            "timeout = \"90s\"",
            "timeout = \"soon\"",
            "`soon` is not a duration",
        ),
        (
            "components/bff/component.toml",
            "sop_order = 2",
            "sop_order = \"2\"",
            "sop_order",
        ),
        (
            "components/bff/component.toml",
            "name = \"bff\"",
            "name = \"api\"",
            "`component.name` = \"api\": must equal its directory name `bff`",
        ),
        (
            "components/bff/component.toml",
            "port = 8080",
            "port = 0",
            "`health.port` = 0",
        ),
        (
            "components/bff/component.toml",
            "path = \"/health\"",
            "path = \"health\"",
            "must start with `/`",
        ),
        (
            "components/nats/component.toml",
            "sop_order = 1",
            "sop_order = 2",
            "`component.sop_order` = 2: already used by component `bff`",
        ),
        (
            "environments/local.toml",
            "bff = 2",
            "bff = -1",
            "`replicas.bff` = -1: must be 0 or more",
        ),
        (
            "environments/local.toml",
            "bff = 2",
            "api = 2",
            "`replicas.api` = 2: unknown component (known: bff, nats)",
        ),
        (
            "environments/local.toml",
            "end = \"16:00\"",
            "end = \"08:00\"",
            "must be after start 09:00",
        ),
        (
            "environments/local.toml",
            "\"Wed\"",
            "\"Someday\"",
            "Someday",
        ),
        (
            "environments/local.toml",
            "mode = \"direct\"",
            "mode = \"tunnel\"",
            "tunnel",
        ),
        (
            "environments/local.toml",
            "namespace = \"fluo\"",
            "namespace = \"Fluo_NS\"",
            "must be a DNS-1123 label",
        ),
        (
            "environments/local.toml",
            "namespace = \"fluo\"",
            "namespace = \"fluo-system\"",
            "reserved",
        ),
        (
            "environments/local.toml",
            "name = \"local\"",
            "name = \"prod\"",
            "must equal the file name `local`",
        ),
        (
            "environments/local.toml",
            "max_error_ratio = 0.05",
            "max_error_ratio = 5.0",
            "must be between 0 and 1",
        ),
        (
            "environments/local.toml",
            "\"http://127.0.0.1:8080\"",
            "\"127.0.0.1:8080\"",
            "`access.urls.bff`",
        ),
        (
            "environments/local.toml",
            "bff = \"http://127.0.0.1:8080\"",
            "bff = \"http://127.0.0.1:8080\"\nnats = \"http://127.0.0.1:4222\"",
            "must be a nats:// or tls:// URL",
        ),
    ];
    for (file, from, to, expected) in cases {
        let tree = Tree::new();
        tree.edit(file, from, to);
        let err = tree.load_err();
        assert!(err.contains(file), "{to}: {err}");
        assert!(
            err.contains(expected),
            "{to}: expected {expected:?} in: {err}"
        );
    }
}

#[test]
fn dependency_errors_are_named() {
    let tree = Tree::new();
    tree.edit("components/bff/component.toml", "[\"nats\"]", "[\"natz\"]");
    assert!(
        tree.load_err()
            .contains("component `bff` depends on unknown component `natz`")
    );

    let tree = Tree::new();
    tree.edit(
        "components/nats/component.toml",
        "sop_order = 1",
        "sop_order = 1\ndepends_on = [\"bff\"]",
    );
    assert_eq!(tree.load_err(), "dependency cycle: nats -> bff -> nats");
}

#[test]
fn bad_manifest_names_file_and_line() {
    let tree = Tree::new();
    tree.write(
        "components/bff/manifests/svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: [x\n",
    );
    let err = tree.load_err();
    assert!(err.contains("components/bff/manifests/svc.yaml:"), "{err}");
    assert!(err.contains("invalid YAML"), "{err}");
}

#[test]
fn unknown_environment_lists_known_ones() {
    let tree = Tree::new();
    let err = Config::load(tree.path(), "qa").unwrap_err().to_string();
    assert!(err.starts_with("unknown environment `qa`"), "{err}");
    assert!(err.ends_with("(known: local)"), "{err}");
    let err = Config::load(tree.path(), "../local")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("unknown environment `../local`"), "{err}");
}

#[test]
fn infra_dir_is_found_from_any_subdirectory_else_defaults_to_dot_infra() {
    let root = tempfile::tempdir().unwrap();
    let deep = root.path().join("rust/some-crate/src");
    std::fs::create_dir_all(&deep).unwrap();
    assert_eq!(find_infra_dir(&deep), PathBuf::from("infra"));
    std::fs::create_dir_all(root.path().join("infra/environments")).unwrap();
    assert_eq!(find_infra_dir(&deep), root.path().join("infra"));
    assert_eq!(find_infra_dir(root.path()), root.path().join("infra"));
}

const CHANGE: &str = "\n[notifications]\ndelivery_timeout = \"2s\"\n\
[[notifications.receivers]]\nname = \"team\"\nwebhook_env = \"TEAM_HOOK\"\n\
[[notifications.receivers]]\nname = \"on-call\"\nwebhook_env = \"ONCALL_HOOK\"\nformat = \"json\"\n\
events = [\"deploy-failed\", \"escalation\"]\n\
[notice]\nperiod = \"48h\"\n\
[[escalation]]\nafter = \"5m\"\nrole = \"deployer\"\naction = \"roll back by hand\"\n\
[[escalation]]\nafter = \"15m\"\nrole = \"senior\"\ncontact = \"@senior\"\naction = \"take over\"\n";

#[test]
fn change_management_sections_load_with_routing() {
    let tree = Tree::new();
    tree.write("environments/local.toml", &format!("{LOCAL}{CHANGE}"));
    let env = Config::load(tree.path(), "local").unwrap().environment;
    let n = &env.notifications;
    assert_eq!(n.delivery_timeout, Duration::from_secs(2));
    assert_eq!(
        n.receivers[0].format,
        PayloadFormat::Slack,
        "default format"
    );
    assert!(
        n.receivers[0].wants(EventKind::Shutdown),
        "default: every event"
    );
    assert!(n.receivers[1].wants(EventKind::Escalation));
    assert!(!n.receivers[1].wants(EventKind::DeploySucceeded));
    assert_eq!(env.notice.unwrap().period, Duration::from_secs(48 * 3600));
    assert_eq!(env.escalation.len(), 2);
    assert_eq!(env.escalation[1].contact, "@senior");
    // Absent sections: no receivers, 5s delivery, no notice, no ladder.
    let plain = Config::load(Tree::new().path(), "local")
        .unwrap()
        .environment;
    assert_eq!(plain.notifications, Notifications::default());
    assert_eq!(plain.notifications.delivery_timeout, Duration::from_secs(5));
    assert!(plain.notice.is_none() && plain.escalation.is_empty());
}

#[test]
fn bad_change_management_values_name_the_key() {
    for (from, to, needle) in [
        (
            "name = \"on-call\"",
            "name = \"team\"",
            "notifications.receivers.name",
        ),
        (
            "\"ONCALL_HOOK\"",
            "\"https://hooks.example/x\"",
            "notifications.receivers.webhook_env",
        ),
        (
            "\"escalation\"]",
            "\"escalaton\"]",
            "unknown variant `escalaton`",
        ),
        (
            "format = \"json\"",
            "format = \"xml\"",
            "unknown variant `xml`",
        ),
        ("period = \"48h\"", "period = \"0s\"", "notice.period"),
        ("after = \"15m\"", "after = \"5m\"", "escalation.after"),
        (
            "delivery_timeout = \"2s\"",
            "delivery_timeout = \"5m\"",
            "notifications.delivery_timeout",
        ),
        (
            "[notice]\n",
            "[notice]\nperiode = \"1h\"\n",
            "unknown field `periode`",
        ),
    ] {
        let tree = Tree::new();
        tree.write("environments/local.toml", &format!("{LOCAL}{CHANGE}"));
        tree.edit("environments/local.toml", from, to);
        let err = tree.load_err();
        assert!(
            err.contains("environments/local.toml") && err.contains(needle),
            "{to}: {err}"
        );
    }
}

#[test]
fn repository_production_requires_48h_notice_and_a_three_step_ladder() {
    let infra = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra");
    let env = Config::load(&infra, "production").unwrap().environment;
    assert_eq!(env.notice.unwrap().period, Duration::from_secs(48 * 3600));
    let afters: Vec<u64> = env.escalation.iter().map(|s| s.after.as_secs()).collect();
    assert_eq!(afters, [300, 900, 1800]);
    let names: Vec<&str> = env
        .notifications
        .receivers
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["team", "on-call"]);
    let staging = Config::load(&infra, "staging").unwrap().environment;
    assert!(staging.notice.is_none());
    assert_eq!(staging.notifications.receivers.len(), 1);
}

const STRATEGY: &str = "\n[strategy.components.bff]\nkind = \"canary\"\nsteps = [10, 50, 100]\n\
pause = \"5s\"\ngates = [50]\n[strategy.components.bff.analysis]\ninterval = \"10s\"\nsamples = 3\n\
[[strategy.components.bff.analysis.checks]]\nmetric = \"http-5xx-ratio\"\nmax = 0.01\nmax_over_baseline = 2.0\n";

#[test]
fn strategy_per_component_loads_and_defaults_to_rolling() {
    let tree = Tree::new();
    tree.write("environments/local.toml", &format!("{LOCAL}{STRATEGY}"));
    let config = Config::load(tree.path(), "local").unwrap();
    let bff = config.environment.strategy.of("bff");
    assert_eq!(bff.kind, strategy::Kind::Canary);
    assert_eq!(bff.steps, [10, 50, 100]);
    assert_eq!(bff.gates, [50]);
    let analysis = bff.analysis.unwrap();
    assert_eq!(
        (analysis.samples, analysis.window, analysis.scrape_wait),
        (3, Duration::from_secs(60), Duration::from_secs(120))
    );
    assert_eq!(analysis.checks[0].max_over_baseline, Some(2.0));
    assert_eq!(
        config.environment.strategy.of("nats").kind,
        strategy::Kind::Rolling
    );
}

#[test]
fn bad_strategy_values_name_the_key_and_value() {
    for (from, to, needle) in [
        (
            "steps = [10, 50, 100]",
            "steps = [10, 50, 90]",
            "`strategy.components.bff.steps` = [10, 50, 90]: must list canary percentages ending at 100",
        ),
        (
            "steps = [10, 50, 100]",
            "steps = [50, 10, 100]",
            "must be increasing percentages",
        ),
        (
            "gates = [50]",
            "gates = [20]",
            "`strategy.components.bff.gates` = 20: must name one of the steps",
        ),
        (
            "kind = \"canary\"",
            "kind = \"canery\"",
            "unknown variant `canery`",
        ),
        (
            "samples = 3",
            "samples = 0",
            "`strategy.components.bff.analysis.samples` = 0",
        ),
        (
            "max = 0.01",
            "max = -1.0",
            "`strategy.components.bff.analysis.checks.http-5xx-ratio.max` = -1.0",
        ),
        (
            "metric = \"http-5xx-ratio\"",
            "metric = \"http-500s\"",
            "unknown variant `http-500s`",
        ),
        (
            "interval = \"10s\"",
            "interval = \"0s\"",
            "strategy.components.bff.analysis.interval",
        ),
        (
            "samples = 3\n",
            "samples = 3\nscrape_wait = \"soon\"\n",
            "scrape_wait",
        ),
        // Custom PromQL: a name, the sampled pods, balanced brackets; not beside a metric.
        (
            "metric = \"http-5xx-ratio\"",
            "name = \"depth\"\nquery = \"max(fluo_queue_depth)\"",
            "`strategy.components.bff.analysis.checks[0].query` = \"max(fluo_queue_depth)\": must select the sampled pods with {pods}",
        ),
        (
            "metric = \"http-5xx-ratio\"",
            "name = \"depth\"\nquery = \"max(fluo_queue_depth{{pods}}\"",
            "`strategy.components.bff.analysis.checks[0].query` = \"max(fluo_queue_depth{{pods}}\": unclosed '('",
        ),
        (
            "metric = \"http-5xx-ratio\"",
            "query = \"max(x{{pods}})\"",
            "`strategy.components.bff.analysis.checks[0].name` = \"\": a custom query needs a name",
        ),
        (
            "metric = \"http-5xx-ratio\"",
            "metric = \"http-5xx-ratio\"\nquery = \"max(x{{pods}})\"",
            "`strategy.components.bff.analysis.checks[0].query` = \"max(x{{pods}})\": give metric (http-5xx-ratio) or query, not both",
        ),
    ] {
        let tree = Tree::new();
        tree.write("environments/local.toml", &format!("{LOCAL}{STRATEGY}"));
        tree.edit("environments/local.toml", from, to);
        let err = tree.load_err();
        assert!(
            err.contains("environments/local.toml") && err.contains(needle),
            "{to}: {err}"
        );
    }
}

#[test]
fn strategy_for_unknown_or_unfit_components_is_refused() {
    for (component, needle) in [
        (
            "bf",
            "`strategy.components.bf` = \"bf\": unknown component (known: nats, bff)",
        ),
        (
            "nats",
            "`strategy.components.nats.kind` = \"blue-green\": component nats declares 0 Deployments",
        ),
    ] {
        let tree = Tree::new();
        let section = format!("\n[strategy.components.{component}]\nkind = \"blue-green\"\n");
        tree.write("environments/local.toml", &format!("{LOCAL}{section}"));
        let err = tree.load_err();
        assert!(
            err.contains("environments/local.toml") && err.contains(needle),
            "{err}"
        );
    }
}

#[test]
fn stateful_components_stay_rolling() {
    let tree = Tree::new();
    tree.write(
        "components/bff/manifests/claim.yaml",
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\n",
    );
    tree.write("environments/local.toml", &format!("{LOCAL}{STRATEGY}"));
    let err = tree.load_err();
    assert!(
        err.contains("declares a PersistentVolumeClaim: stateful components stay rolling"),
        "{err}"
    );
}

#[test]
fn built_in_queries_select_the_pods_and_the_window() {
    use strategy::Metric;
    let pods = r#"instance=~"10.0.0.1:.*""#;
    let w = Duration::from_secs(120);
    assert_eq!(
        Metric::WorkerFailureRatio.query(pods, w),
        r#"(sum(rate(fluo_worker_jobs_processed_total{outcome="failed",instance=~"10.0.0.1:.*"}[120s])) or vector(0)) / sum(rate(fluo_worker_jobs_processed_total{instance=~"10.0.0.1:.*"}[120s]))"#
    );
    assert_eq!(
        Metric::HttpP99Seconds.query(pods, w),
        r#"histogram_quantile(0.99, sum by (le) (rate(fluo_bff_http_request_duration_seconds_bucket{instance=~"10.0.0.1:.*"}[120s])))"#
    );
    assert!(Metric::Http5xxRatio.query(pods, w).starts_with(
        r#"(sum(rate(fluo_bff_http_requests_total{status=~"5..",instance=~"10.0.0.1:.*"}[120s])) or vector(0)) / "#
    ));
}

#[test]
fn digest_resolution_settings_are_checked_at_load() {
    let tree = Tree::new();
    let default = Config::load(tree.path(), "local").unwrap().environment;
    assert_eq!(default.images.resolve, Resolve::default());
    assert!(!default.images.resolve.enabled);
    tree.edit(
        "environments/local.toml",
        "[replicas]",
        "[images.resolve]\nenabled = true\ninsecure_registries = [\"registry.internal:5000\"]\ntimeout = \"3s\"\n\n[replicas]",
    );
    let resolve = Config::load(tree.path(), "local")
        .unwrap()
        .environment
        .images
        .resolve;
    assert!(resolve.enabled);
    assert_eq!(resolve.insecure_registries, ["registry.internal:5000"]);
    assert_eq!(resolve.timeout, Duration::from_secs(3));
    for (bad, wanted) in [
        (
            "\"http://registry.internal\"",
            "images.resolve.insecure_registries",
        ),
        (
            "\"registry.internal/team\"",
            "images.resolve.insecure_registries",
        ),
    ] {
        tree.edit(
            "environments/local.toml",
            "insecure_registries = [\"registry.internal:5000\"]",
            &format!("insecure_registries = [{bad}]"),
        );
        let err = tree.load_err();
        assert!(err.contains(wanted) && err.contains("host[:port]"), "{err}");
        tree.edit(
            "environments/local.toml",
            &format!("insecure_registries = [{bad}]"),
            "insecure_registries = [\"registry.internal:5000\"]",
        );
    }
    tree.edit(
        "environments/local.toml",
        "timeout = \"3s\"",
        "timeout = \"0s\"",
    );
    assert!(tree.load_err().contains("images.resolve.timeout"));
    tree.edit("environments/local.toml", "timeout = \"0s\"", "tls = false");
    assert!(tree.load_err().contains("tls"));
}
