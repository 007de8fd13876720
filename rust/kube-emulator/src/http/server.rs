//! The HTTP surface: serves each route (discovery, OpenAPI, the resource verbs), after fault
//! injection.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, header};
use serde_json::Value;

use crate::apiserver::managed;
use crate::apiserver::registry::{
    self, DeleteOptions, FieldValidation, ListOptions, Part, PatchType, WriteOptions,
};
use crate::apiserver::resources::ResourceDef;
use crate::apiserver::selectors::{FieldSelector, LabelSelector};
use crate::apiserver::status::{ApiError, Result};
use crate::apiserver::store::Store;
use crate::apiserver::watch;
use crate::http::connection::Peer;
use crate::http::discovery;
use crate::http::exec;
use crate::http::faults::{self, Faults, Outcome};
use crate::http::logs;
use crate::http::openapi;
use crate::http::params::Params;
use crate::http::portforward;
use crate::http::routes::{Route, Target, parse_route};
use crate::http::rules_review;
use crate::http::table;
use crate::kubelet::process::ProcessNode;
use crate::wire::portforward_spdy::Resolve;

/// Shared server state.
pub struct App {
    pub store: Arc<Store>,
    pub faults: Arc<RwLock<Faults>>,
    pub server_address: String,
    pub bookmark_interval: Duration,
    /// Where port-forward connects for a pod (the node decides).
    pub pod_targets: PodTargets,
    /// Process mode: containers' real logs.
    pub process_logs: Option<Arc<ProcessNode>>,
}

/// Builds a pod's port-forward resolver.
pub type PodTargets = Box<dyn Fn(&Value) -> Resolve + Send + Sync>;

pub fn router(app: Arc<App>) -> Router {
    crate::http::request_count::layer(Router::new().fallback(handle).with_state(app))
}

fn json_response(code: StatusCode, v: &Value, content_type: &str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, content_type.to_string())],
        v.to_string(),
    )
        .into_response()
}

fn ok(v: &Value) -> Response {
    json_response(StatusCode::OK, v, "application/json")
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> &str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let params = Params::from_pairs(
        Query::<Vec<(String, String)>>::try_from_uri(req.uri())
            .map(|q| q.0)
            .unwrap_or_default(),
    );
    let route = match parse_route(&path) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let accept = header_str(req.headers(), header::ACCEPT).to_string();
    match route {
        Route::Version => ok(&discovery::version()),
        Route::Health => (StatusCode::OK, "ok").into_response(),
        Route::CoreVersions if discovery::wants_aggregated(&accept) => json_response(
            StatusCode::OK,
            &discovery::aggregated(true),
            discovery::AGGREGATED_V2,
        ),
        Route::CoreVersions => ok(&discovery::core_versions(&app.server_address)),
        Route::Groups if discovery::wants_aggregated(&accept) => json_response(
            StatusCode::OK,
            &discovery::aggregated(false),
            discovery::AGGREGATED_V2,
        ),
        Route::Groups => ok(&discovery::group_list()),
        Route::Group(g) => match discovery::group(&g) {
            Some(doc) => ok(&doc),
            None => ApiError::no_route().into_response(),
        },
        Route::ResourceList(g, v) => match discovery::resource_list(&g, &v) {
            Some(doc) => ok(&doc),
            None => ApiError::no_route().into_response(),
        },
        Route::RulesReview if req.method() == Method::POST => {
            let headers = req.headers().clone();
            let content_type = header_str(&headers, header::CONTENT_TYPE).to_string();
            let reviewed = match read_body(req).await {
                Ok(body) => parse_object(&body, &content_type).and_then(|request| {
                    rules_review::review(&app.store.lock(), &headers, &request)
                }),
                Err(e) => Err(e),
            };
            match reviewed {
                Ok(review) => json_response(StatusCode::CREATED, &review, "application/json"),
                Err(e) => e.into_response(),
            }
        }
        Route::RulesReview => ApiError::method_not_allowed().into_response(),
        Route::OpenApiIndex => ok(&openapi::index()),
        Route::OpenApiDoc(g, v) => match openapi::document(&g, &v) {
            Some(doc) => (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CACHE_CONTROL, "public, immutable"),
                ],
                doc.to_string(),
            )
                .into_response(),
            None => ApiError::no_route().into_response(),
        },
        Route::Resource(target) => {
            let faults = app.faults.read().unwrap_or_else(|p| p.into_inner()).clone();
            if !faults.latency.is_zero() {
                tokio::time::sleep(faults.latency).await;
            }
            match faults.outcome(is_write(req.method(), &target), faults::sample()) {
                Outcome::Serve => {}
                Outcome::Fail(e) => return e.into_response(),
                Outcome::Reset => {
                    match req.extensions().get::<ConnectInfo<Peer>>() {
                        Some(ConnectInfo(peer)) => peer.reset(),
                        None => tracing::warn!(
                            "no connection to reset (router served without connect info)"
                        ),
                    }
                    // Never sent: the connection fails every write from now on.
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
            }
            match serve_resource(&app, target, params, req, &faults).await {
                Ok(r) => r,
                Err(e) => e.into_response(),
            }
        }
    }
}

/// Writes for the write-fault shares: the mutating verbs, except the connect subresources
/// (port-forward), which only open a stream.
fn is_write(method: &Method, target: &Target) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) && !matches!(target.sub.as_deref(), Some("portforward" | "exec"))
}

fn write_options(params: &Params, headers: &HeaderMap) -> Result<WriteOptions> {
    let dry_run = match params.all("dryRun").as_slice() {
        [] => false,
        ["All"] => true,
        other => {
            return Err(ApiError::bad_request(format!(
                "Invalid dryRun value: {other:?}; the only supported value is \"All\""
            )));
        }
    };
    let field_manager = match params.get("fieldManager") {
        Some(m) if m.len() > 128 => {
            return Err(ApiError::bad_request(
                "fieldManager: Too long: must have at most 128 bytes",
            ));
        }
        Some(m) => m.to_string(),
        None => String::new(),
    };
    Ok(WriteOptions {
        dry_run,
        field_manager,
        field_validation: FieldValidation::parse(params.get("fieldValidation"))?,
    })
    .map(|mut o: WriteOptions| {
        o.field_manager = if o.field_manager.is_empty() {
            managed::manager_from_user_agent(
                headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok()),
            )
        } else {
            o.field_manager
        };
        o
    })
}

fn list_options(params: &Params) -> Result<ListOptions> {
    Ok(ListOptions {
        labels: LabelSelector::parse(params.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        fields: FieldSelector::parse(params.get("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        limit: match params.get("limit") {
            Some(l) => Some(
                l.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
            ),
            None => None,
        },
        continue_token: params.get("continue").map(str::to_string),
    })
}

fn written_response(w: registry::Written) -> Response {
    let code = if w.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut resp = json_response(code, &w.object, "application/json");
    for warning in w.warnings {
        let v = format!("299 - \"{}\"", warning.replace('"', "\\\""));
        if let Ok(h) = http::HeaderValue::from_str(&v) {
            resp.headers_mut().append(header::WARNING, h);
        }
    }
    resp
}

fn typed(def: &ResourceDef, mut obj: Value) -> Value {
    obj["apiVersion"] = Value::String(def.api_version());
    obj["kind"] = Value::String(def.kind.to_string());
    obj
}

async fn read_body(req: Request) -> Result<bytes::Bytes> {
    axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading request body: {e}")))
}

fn parse_object(body: &[u8], content_type: &str) -> Result<Value> {
    if content_type.contains("protobuf") {
        return Ok(crate::wire::protobuf::decode(body)?);
    }
    if content_type.contains("cbor") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "kube-emulator accepts JSON and YAML request bodies (protobuf only for v1 Namespace, Secret, ConfigMap and ServiceAccount), got {content_type:?}; use kubectl apply -f"
            ),
        ));
    }
    let yaml = content_type.contains("yaml");
    let parsed = if yaml {
        serde_yaml::from_slice::<Value>(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<Value>(body).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| ApiError::bad_request(format!("the object provided is unrecognized: {e}")))
}

async fn serve_resource(
    app: &Arc<App>,
    t: Target,
    params: Params,
    req: Request,
    faults: &Faults,
) -> Result<Response> {
    let store = &app.store;
    let def = t.def;
    let ns = t.namespace.clone().unwrap_or_default();
    let method = req.method().clone();
    let headers = req.headers().clone();
    let accept = header_str(&headers, header::ACCEPT).to_string();
    let content_type = header_str(&headers, header::CONTENT_TYPE).to_string();
    match (method, t.name.as_deref(), t.sub.as_deref()) {
        (Method::GET, None, None) if params.flag("watch") => {
            let lo = list_options(&params)?;
            let opts = watch::WatchOptions {
                namespace: t.namespace.clone(),
                labels: lo.labels,
                fields: lo.fields,
                resource_version: params.get("resourceVersion").map(str::to_string),
                timeout: params
                    .get("timeoutSeconds")
                    .and_then(|s| s.parse().ok())
                    .map(Duration::from_secs),
                bookmarks: params.flag("allowWatchBookmarks"),
                send_initial_events: params.flag("sendInitialEvents"),
                close_after: faults.watch_close(faults::sample(), faults::sample()),
                bookmark_interval: app.bookmark_interval,
            };
            let stream = watch::start(store.clone(), def, opts);
            Ok(Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CACHE_CONTROL, "no-cache, private")
                .body(Body::from_stream(stream))
                .expect("static response parts"))
        }
        (Method::GET, None, None) => {
            let lo = list_options(&params)?;
            let list = registry::list(store, def, t.namespace.as_deref(), &lo)?;
            if table::wants_table(&accept) {
                let items: Vec<Value> = list["items"].as_array().cloned().unwrap_or_default();
                let rv = list["metadata"]["resourceVersion"].as_str().unwrap_or("");
                let include = params.get("includeObject").unwrap_or("Metadata");
                let t = table::render(def, &items, include, rv, list["metadata"].get("continue"));
                return Ok(json_response(
                    StatusCode::OK,
                    &t,
                    "application/json;as=Table;v=v1;g=meta.k8s.io",
                ));
            }
            Ok(ok(&list))
        }
        (Method::GET, Some(name), None | Some("status")) => {
            let obj = typed(def, registry::get(store, def, &ns, name)?);
            if table::wants_table(&accept) {
                let rv = obj["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let include = params.get("includeObject").unwrap_or("Metadata");
                let t = table::render(def, std::slice::from_ref(&obj), include, &rv, None);
                return Ok(json_response(
                    StatusCode::OK,
                    &t,
                    "application/json;as=Table;v=v1;g=meta.k8s.io",
                ));
            }
            Ok(ok(&obj))
        }
        (Method::GET, Some(name), Some("scale")) => {
            Ok(ok(&registry::get_scale(store, def, &ns, name)?))
        }
        (Method::PUT | Method::PATCH, Some(name), Some("scale")) => {
            let opts = write_options(&params, &headers)?;
            let is_patch = req.method() == Method::PATCH;
            let name = name.to_string();
            let body = read_body(req).await?;
            let scale = if is_patch {
                let current = registry::get_scale(store, def, &ns, &name)?;
                let patch_err =
                    |e: crate::apiserver::patch::Error| ApiError::bad_request(e.to_string());
                match PatchType::from_content_type(&content_type) {
                    Some(PatchType::Json) => {
                        crate::apiserver::patch::json_patch(&current, &body).map_err(patch_err)?
                    }
                    Some(PatchType::Merge) => {
                        crate::apiserver::patch::merge_patch(&current, &parse_object(&body, "")?)
                    }
                    Some(PatchType::Strategic) => crate::apiserver::patch::strategic_merge(
                        &current,
                        &parse_object(&body, "")?,
                    )
                    .map_err(patch_err)?,
                    _ => {
                        return Err(ApiError::new(
                            415,
                            "UnsupportedMediaType",
                            format!("unsupported patch type for scale: {content_type:?}"),
                        ));
                    }
                }
            } else {
                parse_object(&body, &content_type)?
            };
            Ok(ok(&registry::update_scale(
                store, def, &ns, &name, &scale, &opts,
            )?))
        }
        (Method::GET, Some(name), Some("log")) => {
            logs::serve(store.clone(), &ns, name, &params, app.process_logs.clone()).await
        }
        (Method::GET | Method::POST, Some(name), Some("exec")) => {
            let process = app.process_logs.is_some();
            exec::serve(store.clone(), process, &ns, name, &params, req).await
        }
        (Method::GET | Method::POST, Some(name), Some("portforward")) => {
            portforward::serve(store.clone(), &ns, name, &params, req, &*app.pod_targets).await
        }
        (Method::POST, None, None) => {
            if def.namespaced && t.namespace.is_none() {
                return Err(ApiError::method_not_allowed());
            }
            let opts = write_options(&params, &headers)?;
            let body = read_body(req).await?;
            let obj = parse_object(&body, &content_type)?;
            Ok(written_response(registry::create(
                store, def, &ns, obj, &opts,
            )?))
        }
        (Method::PUT, Some(name), sub @ (None | Some("status"))) => {
            let opts = write_options(&params, &headers)?;
            let body = read_body(req).await?;
            let obj = parse_object(&body, &content_type)?;
            let part = if sub.is_some() {
                Part::Status
            } else {
                Part::Main
            };
            Ok(written_response(registry::update(
                store, def, &ns, name, obj, part, &opts,
            )?))
        }
        (Method::PATCH, Some(name), sub @ (None | Some("status"))) => {
            let opts = write_options(&params, &headers)?;
            let ty = PatchType::from_content_type(&content_type).ok_or_else(|| {
                ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"),
                )
            })?;
            if ty == PatchType::Apply && params.get("fieldManager").is_none_or(str::is_empty) {
                return Err(ApiError::bad_request(
                    "PATCH requests with apply content type require fieldManager",
                ));
            }
            let force = params.flag("force");
            if force && ty != PatchType::Apply {
                return Err(ApiError::bad_request(
                    "force: Invalid value: true: may not be specified for non-apply patch",
                ));
            }
            let name = name.to_string();
            let body = read_body(req).await?;
            let part = if sub.is_some() {
                Part::Status
            } else {
                Part::Main
            };
            Ok(written_response(registry::patch(
                store, def, &ns, &name, ty, &body, part, force, &opts,
            )?))
        }
        (Method::DELETE, name, None) => {
            let dry_run = write_options(&params, &headers)?.dry_run;
            let base = DeleteOptions {
                dry_run,
                orphan: params.get("propagationPolicy") == Some("Orphan")
                    || params.flag("orphanDependents"),
                ..Default::default()
            };
            let name = name.map(str::to_string);
            let body = read_body(req).await?;
            let opts = base.from_body(&body)?;
            match name {
                Some(n) => Ok(ok(&registry::delete(store, def, &ns, &n, &opts)?)),
                None => {
                    let lo = list_options(&params)?;
                    Ok(ok(&registry::delete_collection(
                        store,
                        def,
                        t.namespace.as_deref(),
                        &lo,
                        &opts,
                    )?))
                }
            }
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}
