//! One container's life, as the kubelet runs it: resolve the image, build env and mounts, start
//! the process, probe it, restart it per restartPolicy with the CrashLoopBackOff back-off, and
//! stop it (preStop, SIGTERM, grace, SIGKILL). Every change is reported as the container's
//! status object.

use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::PodContext;
use super::cgroup::ContainerCgroup;
use super::env::{self, PodFacts};
use super::launch::{self, Launch};
use super::probes::{self, Timing};
use super::volumes::{self, VolumeContext};
use crate::controllers::events::{self, KUBELET, Record, Type};
use crate::controllers::{def, now_str};

/// A back-off is forgotten after the container ran this long (the kubelet's rule).
const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// A status report: (container index, containerStatus object).
pub type Report = (usize, Value);

enum ProbeEvent {
    Started,
    Ready(bool),
    /// Liveness or startup failed: the container is killed and restarted.
    Kill(String),
}

struct Run {
    child: tokio::process::Child,
    pid: Option<u32>,
    started_at: String,
    started: Instant,
    cgroup: Option<ContainerCgroup>,
    /// The cgroup's OOM kill count when the run began.
    oom_kills: u64,
}

pub struct Supervisor {
    ctx: Arc<PodContext>,
    index: usize,
    spec: Value,
    name: String,
    image: String,
    reports: mpsc::Sender<Report>,
    stop: watch::Receiver<Option<Duration>>,
    restart_count: u32,
    last_state: Value,
}

impl Supervisor {
    pub fn new(
        ctx: Arc<PodContext>,
        index: usize,
        reports: mpsc::Sender<Report>,
        stop: watch::Receiver<Option<Duration>>,
    ) -> Self {
        let spec = ctx.pod["spec"]["containers"][index].clone();
        Self {
            name: spec["name"].as_str().unwrap_or("").to_string(),
            image: spec["image"].as_str().unwrap_or("").to_string(),
            spec,
            ctx,
            index,
            reports,
            stop,
            restart_count: 0,
            last_state: json!({}),
        }
    }

    fn status(&self, state: Value, ready: bool, started: bool, container_id: &str) -> Value {
        let mut s = json!({"name": self.name, "image": self.image,
            "imageID": format!("kube-emulator-process://{}", self.image),
            "state": state, "lastState": self.last_state, "ready": ready, "started": started,
            "restartCount": self.restart_count});
        if !container_id.is_empty() {
            s["containerID"] = json!(container_id);
        }
        s
    }

    async fn report(&self, status: Value) {
        let _ = self.reports.send((self.index, status)).await;
    }

    /// Records a kubelet Event on the pod for this container (as `kubectl describe` shows).
    fn event(&self, kind: Type, reason: &str, message: String) {
        let mut state = self.ctx.store.lock();
        let pods = def("", "Pod");
        let pod = state
            .get(pods, &self.ctx.namespace, &self.ctx.name)
            .filter(|p| p["metadata"]["uid"] == self.ctx.uid.as_str())
            .cloned()
            .unwrap_or_else(|| self.ctx.pod.clone());
        events::record(
            &mut state,
            Record {
                source: KUBELET,
                object: &pod,
                field_path: Some(format!("spec.containers{{{}}}", self.name)),
                kind,
                reason,
                message,
            },
        );
    }

    async fn waiting(&self, reason: &str, message: &str) {
        let mut w = json!({"reason": reason});
        if !message.is_empty() {
            w["message"] = json!(message);
        }
        self.report(self.status(json!({"waiting": w}), false, false, ""))
            .await;
    }

    /// Sleeps `d` unless the pod is stopped first; true when stopped.
    async fn sleep_or_stop(&mut self, d: Duration) -> bool {
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = stop.wait_for(Option::is_some) => {}
        }
        self.stop.borrow().is_some()
    }

    pub async fn run(mut self) {
        let Some(entry) = self.ctx.images.resolve(&self.image).cloned() else {
            let message = self.ctx.images.unknown_image_message(&self.image);
            self.event(Type::Warning, "Failed", message.clone());
            self.event(Type::Warning, "Failed", "Error: ErrImagePull".into());
            self.waiting("ErrImagePull", &message).await;
            if self.sleep_or_stop(Duration::from_secs(1)).await {
                return;
            }
            let back_off = format!("Back-off pulling image \"{}\": {message}", self.image);
            self.event(
                Type::Normal,
                "BackOff",
                format!("Back-off pulling image \"{}\"", self.image),
            );
            self.event(Type::Warning, "Failed", "Error: ImagePullBackOff".into());
            self.waiting("ImagePullBackOff", &back_off).await;
            let _ = self.stop.wait_for(Option::is_some).await;
            return;
        };
        let policy = self.ctx.pod["spec"]["restartPolicy"]
            .as_str()
            .unwrap_or("Always")
            .to_string();
        let mut backoff: Option<Duration> = None;
        loop {
            if self.stop.borrow().is_some() {
                return;
            }
            let run = match self.start(&entry).await {
                Ok(run) => run,
                Err(StartError::Config(message)) => {
                    self.event(Type::Warning, "Failed", format!("Error: {message}"));
                    self.waiting("CreateContainerConfigError", &message).await;
                    if self.sleep_or_stop(Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
                Err(StartError::Spawn(message)) => {
                    tracing::warn!(container = %self.name, %message, "container start failed");
                    self.waiting("RunContainerError", &message).await;
                    if self.sleep_or_stop(Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            let ran_from = run.started;
            let (terminated, stopped) = self.watch_run(run).await;
            let code = terminated["exitCode"].as_i64().unwrap_or(0);
            self.last_state = json!({"terminated": terminated});
            if stopped {
                self.report(self.status(json!({}), false, false, "")).await;
                return;
            }
            let restart = match policy.as_str() {
                "Never" => false,
                "OnFailure" => code != 0,
                _ => true,
            };
            if !restart {
                let state = self.last_state.clone();
                self.last_state = json!({});
                self.report(self.status(state, false, false, "")).await;
                let _ = self.stop.wait_for(Option::is_some).await;
                return;
            }
            if ran_from.elapsed() >= BACKOFF_RESET {
                backoff = None;
            }
            // The first restart is immediate; later ones wait, doubling up to the maximum.
            if let Some(delay) = backoff {
                let message = format!(
                    "back-off {} restarting failed container={} pod={}_{}({})",
                    go_secs(delay),
                    self.name,
                    self.ctx.name,
                    self.ctx.namespace,
                    self.ctx.uid
                );
                self.event(
                    Type::Warning,
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {} in pod {}_{}({})",
                        self.name, self.ctx.name, self.ctx.namespace, self.ctx.uid
                    ),
                );
                self.waiting("CrashLoopBackOff", &message).await;
                if self.sleep_or_stop(delay).await {
                    return;
                }
            }
            backoff = Some(match backoff {
                None => self.ctx.options.backoff_initial,
                Some(d) => (d * 2).min(self.ctx.options.backoff_max),
            });
            self.restart_count += 1;
        }
    }

    async fn start(&self, entry: &super::images::ImageEntry) -> Result<Run, StartError> {
        let ctx = &self.ctx;
        let ip = ctx.network.ip.to_string();
        let begun = Instant::now();
        let facts = PodFacts {
            pod: &ctx.pod,
            pod_ip: &ip,
            host_ip: &ctx.host_ip,
            api_host: &ctx.api_host,
        };
        let (envs, mounts) = {
            let state = ctx.store.lock();
            let envs = env::build(&state, &facts, &self.spec).map_err(StartError::Config)?;
            let vctx = VolumeContext {
                facts: PodFacts { ..facts },
                ca_crt: &ctx.options.ca_crt,
                claims_dir: &ctx.claims_dir,
            };
            let vols = volumes::materialize(&state, &vctx, &ctx.dir).map_err(StartError::Config)?;
            let mounts = volumes::container_mounts(&ctx.dir, &vols, &self.spec)
                .map_err(StartError::Config)?;
            (envs, mounts)
        };
        let strings = |v: &Value| -> Option<Vec<String>> {
            v.as_array().map(|a| {
                a.iter()
                    .map(|s| env::expand(s.as_str().unwrap_or(""), &envs))
                    .collect()
            })
        };
        let mut argv = match strings(&self.spec["command"]) {
            Some(cmd) if !cmd.is_empty() => cmd,
            _ => vec![entry.command.clone()],
        };
        match strings(&self.spec["args"]) {
            Some(args) => argv.extend(args),
            None if self.spec["command"].as_array().is_none_or(Vec::is_empty) => {
                argv.extend(entry.args.iter().cloned())
            }
            None => {}
        }
        let mut full_env = vec![
            ("PATH".to_string(), ctx.options.path.clone()),
            ("HOME".to_string(), "/".to_string()),
            ("HOSTNAME".to_string(), ctx.hostname.clone()),
        ];
        full_env.extend(envs);
        let sc = |k: &str| {
            self.spec["securityContext"][k]
                .as_u64()
                .or_else(|| ctx.pod["spec"]["securityContext"][k].as_u64())
                .map(|n| n as u32)
        };
        let run_as = sc("runAsUser").map(|uid| (uid, sc("runAsGroup").unwrap_or(0)));
        let log_file = ctx.log_path(&self.name, self.restart_count);
        let files = begun.elapsed();
        let cgroup = self.cgroup()?;
        let cgroup_took = begun.elapsed() - files;
        let oom_kills = cgroup.as_ref().map_or(0, ContainerCgroup::oom_kills);
        let launch = Launch {
            netns_path: &ctx.network.netns_path,
            argv,
            env: full_env,
            working_dir: self.spec["workingDir"].as_str().map(str::to_string),
            run_as,
            mounts,
            hostname: ctx.hostname.clone(),
            slot_dir: &ctx.slot_dir,
            log_file,
            exe_dir: ctx.dir.join("exe"),
            cgroup_join: cgroup.as_ref().map(ContainerCgroup::join_file),
        };
        let spawning = Instant::now();
        let child = launch::spawn(launch)
            .await
            .map_err(|e| StartError::Spawn(format!("starting container {}: {e}", self.name)))?;
        // The start's phases, for the pod-start benchmark's profile.
        tracing::debug!(container = %self.name, pod = %ctx.name, took = ?spawning.elapsed(), ?files, cgroup = ?cgroup_took, "container process spawned");
        let image = &self.image;
        self.event(
            Type::Normal,
            "Pulled",
            format!("Container image \"{image}\" already present on machine"),
        );
        self.event(
            Type::Normal,
            "Created",
            format!("Created container {}", self.name),
        );
        self.event(
            Type::Normal,
            "Started",
            format!("Started container {}", self.name),
        );
        Ok(Run {
            pid: child.id(),
            child,
            started_at: now_str(),
            started: Instant::now(),
            cgroup,
            oom_kills,
        })
    }

    /// The container's cgroup with `resources.limits.memory` as its limit (None where the
    /// host has no writable memory controller; the node warned about that once).
    fn cgroup(&self) -> Result<Option<ContainerCgroup>, StartError> {
        let Some(cgroups) = &self.ctx.cgroups else {
            return Ok(None);
        };
        let raw = &self.spec["resources"]["limits"]["memory"];
        let limit = match raw {
            Value::Null => None,
            v => {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                let bytes = env::quantity(&text).filter(|b| *b >= 1.0).ok_or_else(|| {
                    StartError::Config(format!(
                        "container {}: resources.limits.memory {text:?} is not a memory quantity (e.g. 64Mi)",
                        self.name
                    ))
                })?;
                Some(bytes.ceil() as u64)
            }
        };
        cgroups
            .container(&self.ctx.uid, &self.name, limit)
            .map(Some)
            .map_err(|e| StartError::Spawn(format!("container {}: {e}", self.name)))
    }

    /// Follows one run until the process exits (or is killed by a probe or the pod's stop);
    /// returns its `terminated` state and whether the pod is stopping.
    async fn watch_run(&mut self, mut run: Run) -> (Value, bool) {
        let container_id = format!(
            "kube-emulator-process://{}",
            run.pid.map(|p| p.to_string()).unwrap_or_default()
        );
        let has_startup = !self.spec["startupProbe"].is_null();
        let has_readiness = !self.spec["readinessProbe"].is_null();
        let mut started = !has_startup;
        let mut ready = started && !has_readiness;
        let running = json!({"running": {"startedAt": run.started_at}});
        self.report(self.status(running.clone(), ready, started, &container_id))
            .await;
        let (probe_tx, mut probe_rx) = mpsc::channel(8);
        let prober = tokio::spawn(probe_loop(
            self.spec.clone(),
            self.ctx.network.ip,
            run.pid,
            probe_tx,
        ));
        let mut stopped = false;
        let mut killed_for: Option<String> = None;
        let mut stop = self.stop.clone();
        let status = loop {
            let event = tokio::select! {
                status = run.child.wait() => break status.ok(),
                ev = probe_rx.recv() => Some(ev),
                _ = stop.wait_for(Option::is_some) => None,
            };
            let Some(event) = event else {
                stopped = true;
                self.event(
                    Type::Normal,
                    "Killing",
                    format!("Stopping container {}", self.name),
                );
                let grace = (*stop.borrow()).unwrap_or_default();
                break self.terminate(&mut run, grace).await;
            };
            match event {
                Some(ProbeEvent::Started) => {
                    started = true;
                    ready = !has_readiness;
                }
                Some(ProbeEvent::Ready(r)) => ready = r && started,
                Some(ProbeEvent::Kill(why)) => {
                    let probe = if why.starts_with("Startup") {
                        "startup"
                    } else {
                        "liveness"
                    };
                    self.event(Type::Warning, "Unhealthy", why.clone());
                    self.event(
                        Type::Normal,
                        "Killing",
                        format!(
                            "Container {} failed {probe} probe, will be restarted",
                            self.name
                        ),
                    );
                    tracing::info!(container = %self.name, pod = %self.ctx.name, %why, "killing the container");
                    killed_for = Some(why);
                    let grace = self.ctx.grace();
                    break self.terminate(&mut run, grace).await;
                }
                None => continue,
            }
            self.report(self.status(running.clone(), ready, started, &container_id))
                .await;
        };
        prober.abort();
        let code = status.map_or(137, |s| {
            s.code()
                .map(i64::from)
                .or_else(|| s.signal().map(|sig| 128 + i64::from(sig)))
                .unwrap_or(137)
        });
        // As containerd reports it: any OOM kill in the container's cgroup during the run.
        let oom = run
            .cgroup
            .as_ref()
            .is_some_and(|c| c.oom_kills() > run.oom_kills);
        let reason = match code {
            _ if oom => "OOMKilled",
            0 => "Completed",
            _ => "Error",
        };
        let mut terminated = json!({"exitCode": code, "reason": reason,
            "startedAt": run.started_at, "finishedAt": now_str(), "containerID": container_id});
        if let Some(why) = killed_for {
            terminated["message"] = json!(why);
        }
        (terminated, stopped)
    }

    /// preStop, then SIGTERM, then SIGKILL once `grace` is over.
    async fn terminate(&self, run: &mut Run, grace: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + grace;
        let pre_stop = &self.spec["lifecycle"]["preStop"];
        if !pre_stop.is_null() {
            let result = tokio::time::timeout_at(
                deadline,
                probes::run(
                    pre_stop,
                    &self.spec,
                    self.ctx.network.ip,
                    run.pid,
                    grace.max(Duration::from_secs(1)),
                ),
            )
            .await;
            if let Ok(Err(e)) = result {
                tracing::info!(container = %self.name, error = %e, "preStop hook failed");
            }
        }
        if let Some(pid) = run.pid {
            launch::signal(pid, "TERM").await;
        }
        match tokio::time::timeout_at(deadline, run.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                let _ = run.child.start_kill();
                run.child.wait().await.ok()
            }
        }
    }
}

enum StartError {
    Config(String),
    Spawn(String),
}

/// `10s`, `1m20s` as the kubelet prints back-offs.
fn go_secs(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{s}s")
    }
}

/// Runs the startup probe, then readiness and liveness, reporting transitions.
async fn probe_loop(
    spec: Value,
    ip: std::net::Ipv4Addr,
    pid: Option<u32>,
    events: mpsc::Sender<ProbeEvent>,
) {
    let start = tokio::time::Instant::now();
    if let Some(probe) = spec.get("startupProbe").filter(|p| !p.is_null()) {
        let t = Timing::of(probe);
        tokio::time::sleep_until(start + t.initial_delay).await;
        let mut failures = 0;
        loop {
            match probes::run(probe, &spec, ip, pid, t.timeout).await {
                Ok(()) => break,
                Err(e) => {
                    failures += 1;
                    if failures >= t.failure_threshold {
                        let _ = events
                            .send(ProbeEvent::Kill(format!("Startup probe failed: {e}")))
                            .await;
                        return;
                    }
                }
            }
            tokio::time::sleep(t.period).await;
        }
        if events.send(ProbeEvent::Started).await.is_err() {
            return;
        }
    }
    let after_start = tokio::time::Instant::now();
    let readiness = spec.get("readinessProbe").filter(|p| !p.is_null()).cloned();
    let liveness = spec.get("livenessProbe").filter(|p| !p.is_null()).cloned();
    let ready_loop = async {
        let Some(probe) = readiness else {
            return;
        };
        let t = Timing::of(&probe);
        tokio::time::sleep_until(after_start.max(start + t.initial_delay)).await;
        let (mut ok, mut bad, mut ready) = (0, 0, false);
        loop {
            match probes::run(&probe, &spec, ip, pid, t.timeout).await {
                Ok(()) => {
                    ok += 1;
                    bad = 0;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "readiness probe failed");
                    bad += 1;
                    ok = 0;
                }
            }
            let next = if ok >= t.success_threshold {
                true
            } else if bad >= t.failure_threshold {
                false
            } else {
                ready
            };
            if next != ready {
                ready = next;
                if events.send(ProbeEvent::Ready(ready)).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(t.period).await;
        }
    };
    let live_loop = async {
        let Some(probe) = liveness else {
            return;
        };
        let t = Timing::of(&probe);
        tokio::time::sleep_until(after_start.max(start + t.initial_delay)).await;
        let mut bad = 0;
        loop {
            match probes::run(&probe, &spec, ip, pid, t.timeout).await {
                Ok(()) => bad = 0,
                Err(e) => {
                    bad += 1;
                    if bad >= t.failure_threshold {
                        let _ = events
                            .send(ProbeEvent::Kill(format!("Liveness probe failed: {e}")))
                            .await;
                        break;
                    }
                }
            }
            tokio::time::sleep(t.period).await;
        }
    };
    tokio::join!(ready_loop, live_loop);
}
