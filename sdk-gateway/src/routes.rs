//! The route table: each configured route compiled once (its client, methods, limiter and
//! metrics), and a `matchit` tree (axum's router) that finds a request's route and the raw,
//! still percent-encoded values of its parameters.

use std::{collections::HashSet, sync::Arc, time::Duration};

use http::{HeaderValue, Method, StatusCode};
use tokio::time::Instant;

use crate::{
    config::{GatewayConfig, RouteConfig},
    error::GatewayError,
    limit::{RouteLimiter, SharedLimits},
    metrics::RouteMetrics,
    template::Template,
};

/// One route, ready to serve.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) config: RouteConfig,
    rewrite: Option<Template>,
    target: Target,
    methods: Option<(Vec<Method>, HeaderValue)>,
    pub(crate) limiter: Option<RouteLimiter>,
    pub(crate) metrics: RouteMetrics,
}

/// Where a route's requests go.
#[derive(Debug)]
enum Target {
    /// A service named in the configuration: its client, made once.
    Fixed(sdk::ServiceClient),
    /// The service a path parameter names (`/ws/{service}`).
    Param(String),
}

/// The routes, and the tree that finds them.
#[derive(Debug)]
pub(crate) struct Routes {
    tree: matchit::Router<usize>,
    routes: Vec<Route>,
    known: KnownServices,
    /// Requests no route matched.
    pub(crate) unmatched: RouteMetrics,
}

/// A request's route, and what its parameters make of it.
#[derive(Debug)]
pub(crate) struct Matched<'a> {
    pub(crate) route: &'a Route,
    /// The path and query the service gets.
    pub(crate) path: String,
    /// For a `{service}` route, the service the path names (raw).
    service: Option<String>,
}

impl Routes {
    /// Compiles `config`'s routes; clients come from `sdk`.
    pub(crate) fn new(
        config: &GatewayConfig,
        sdk: &sdk::ServiceSdk,
        shared: Option<&SharedLimits>,
    ) -> Result<Self, String> {
        let mut tree = matchit::Router::new();
        let mut routes = Vec::with_capacity(config.routes.len());
        for (index, route) in config.routes.iter().enumerate() {
            tree.insert(route.path.clone(), index)
                .map_err(|e| format!("routes.{}.path: {e}", route.name))?;
            let target = match crate::template::single_param(&route.service) {
                Some(param) => Target::Param(param.to_owned()),
                None => Target::Fixed(sdk.get_client(&route.service)),
            };
            let methods = (!route.methods.is_empty()).then(|| {
                let methods: Vec<Method> = route
                    .methods
                    .iter()
                    .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                    .collect();
                let allow = methods
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                let allow = HeaderValue::from_str(&allow).unwrap_or(HeaderValue::from_static(""));
                (methods, allow)
            });
            let rewrite = match &route.rewrite {
                Some(text) => Some(
                    Template::parse(text)
                        .map_err(|e| format!("routes.{}.rewrite: {e}", route.name))?,
                ),
                None => None,
            };
            routes.push(Route {
                rewrite,
                limiter: route
                    .rate_limit
                    .map(|rate| RouteLimiter::new(&route.name, rate, shared.cloned())),
                metrics: RouteMetrics::new(&route.name),
                config: route.clone(),
                target,
                methods,
            });
        }
        Ok(Routes {
            tree,
            routes,
            known: KnownServices::new(sdk.clone()),
            unmatched: RouteMetrics::new("none"),
        })
    }

    /// The route for `uri`, the path (and query) the service gets, and, for a `{service}`
    /// route, the service named: all made while the matched values are borrowed, so
    /// nothing is copied out of them but what is sent.
    pub(crate) fn find(&self, uri: &http::Uri) -> Result<Option<Matched<'_>>, GatewayError> {
        let Ok(found) = self.tree.at(uri.path()) else {
            return Ok(None);
        };
        let Some(route) = self.routes.get(*found.value) else {
            return Ok(None);
        };
        let path = match &route.rewrite {
            Some(rewrite) => {
                let mut path = rewrite
                    .fill(|name| found.params.get(name))
                    .map_err(|e| GatewayError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
                if let Some(query) = uri.query() {
                    path.push('?');
                    path.push_str(query);
                }
                path
            }
            None => uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        };
        // Judged as every upstream may decode it, after the rewrite (which pastes the raw
        // values): `..%2f`, `%252e`, `..;` or `%5c` never reach a service that might read
        // them as separators or dot segments.
        sdk::path::check_untrusted_path(&path)
            .map_err(|e| GatewayError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
        let service = match &route.target {
            Target::Param(param) => Some(found.params.get(param).unwrap_or_default().to_owned()),
            Target::Fixed(_) => None,
        };
        Ok(Some(Matched {
            route,
            path,
            service,
        }))
    }

    /// Every route.
    pub(crate) fn all(&self) -> &[Route] {
        &self.routes
    }

    /// The client of the service the request goes to: a named service's own, or, for a
    /// `{service}` route, that of the service the path names if the gateway knows it
    /// (configured, or registered), so made-up names create nothing.
    pub(crate) async fn client(
        &self,
        matched: &Matched<'_>,
        sdk: &sdk::ServiceSdk,
    ) -> Result<sdk::ServiceClient, GatewayError> {
        let name = match (&matched.route.target, &matched.service) {
            (Target::Fixed(client), _) => return Ok(client.clone()),
            (Target::Param(_), Some(name)) => name.as_str(),
            (Target::Param(_), None) => "",
        };
        if sdk_registry::validate_name("service", name).is_err() || !self.known.contains(name).await
        {
            return Err(GatewayError::unknown_service(name));
        }
        Ok(sdk.get_client(name))
    }
}

impl Route {
    /// The client of a route to a named service (none for a `{service}` route).
    pub(crate) fn fixed_client(&self) -> Option<&sdk::ServiceClient> {
        match &self.target {
            Target::Fixed(client) => Some(client),
            Target::Param(_) => None,
        }
    }

    /// Refuses `method` if the route names its methods and not this one.
    pub(crate) fn allows(&self, method: &Method) -> Result<(), GatewayError> {
        match &self.methods {
            Some((methods, allow)) if !methods.contains(method) => {
                Err(GatewayError::method_not_allowed(allow.clone()))
            }
            _ => Ok(()),
        }
    }
}

/// The services a `{service}` route may reach: the configured ones and those the registry
/// lists, looked up again at most once a second (so a stream of made-up names costs the
/// registry one listing a second, and the gateway nothing that grows).
#[derive(Debug)]
struct KnownServices {
    sdk: sdk::ServiceSdk,
    listed: std::sync::RwLock<Option<(Instant, Arc<HashSet<String>>)>>,
    refreshing: tokio::sync::Mutex<()>,
}

const RELIST_AFTER: Duration = Duration::from_secs(1);

impl KnownServices {
    fn new(sdk: sdk::ServiceSdk) -> Self {
        KnownServices {
            sdk,
            listed: std::sync::RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    fn current(&self) -> Option<(Instant, Arc<HashSet<String>>)> {
        self.listed
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn contains(&self, name: &str) -> bool {
        if self.sdk.config().services.contains_key(name) {
            return true;
        }
        if let Some((at, names)) = self.current() {
            if names.contains(name) || at.elapsed() < RELIST_AFTER {
                return names.contains(name);
            }
        }
        let _one_at_a_time = self.refreshing.lock().await;
        if let Some((at, names)) = self.current() {
            if at.elapsed() < RELIST_AFTER {
                return names.contains(name); // listed while this call waited
            }
        }
        let names = match self.sdk.registry().services().await {
            Ok(names) => Arc::new(names.into_iter().collect::<HashSet<_>>()),
            Err(e) => {
                tracing::warn!(error = %e, "could not list the registry's services");
                self.current().map(|(_, names)| names).unwrap_or_default()
            }
        };
        let found = names.contains(name);
        *self
            .listed
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), names));
        found
    }
}
