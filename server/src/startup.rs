//! Builds the application from [`Settings`]: rebuilds state from the recordings, binds the
//! listener (port 0 in tests), starts the live ticker, fsync timer, file follower and consumers.

use std::{
    net::{SocketAddr, TcpListener},
    rc::Rc,
    sync::Arc,
    time::Duration,
};

use actix_http::{HttpService, KeepAlive, ServiceConfig, error::DispatchError};
use actix_service::{IntoServiceFactory, fn_factory, fn_service, map_config};
use actix_web::{
    App,
    body::MessageBody,
    dev::{AppConfig, Server, Service, ServiceFactory, ServiceRequest, ServiceResponse},
    http::{
        Method,
        header::{self, HeaderValue},
    },
    rt::net::TcpStream,
    web,
};
use anyhow::Context;

use crate::{
    auth::{Access, TokenKeys},
    cluster::{self, Cluster},
    consume,
    demo::{self, embedded, player::Pace},
    engine::{Engine, HeldLimits},
    geo::GeoDb,
    hooks::{self, DubHook},
    hub::{Hub, QueueBounds},
    ingest::{self, IngestLimits, Pipeline},
    links::{self, Tracker},
    live, recording,
    replay::{self, Library},
    routes,
    settings::{FsyncPolicy, Settings},
    telemetry::{self, sources::Consumers},
    ws,
};

pub struct Application {
    server: Server,
    engine: Arc<Engine>,
}

impl Application {
    /// Must be called inside an actix/tokio runtime: it spawns the background tasks.
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, None)
    }

    /// With `demo`, the embedded demo campaign is loaded and played into the live feed, and the
    /// embedded demo database locates events unless `--geoip` names another.
    pub fn build_with(mut settings: Settings, demo: Option<Pace>) -> anyhow::Result<Self> {
        let metrics = telemetry::metrics_handle();
        let cluster = settings.cluster();
        if cluster.is_some() && demo.is_some() {
            anyhow::bail!("the demo plays on one node: run it without --redis");
        }
        // The port first: a server that cannot listen says so before rebuilding any state.
        let listener = TcpListener::bind(settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let address = listener.local_addr()?;
        let geo = Arc::new(open_geo(&settings, demo.is_some())?);
        let hub = Hub::bounded(QueueBounds {
            frames: settings.subscriber_queue,
            bytes: settings.subscriber_queue_bytes,
            max_lag: Duration::from_millis(settings.subscriber_max_lag_ms),
        });
        // A file follower's bookmark stays in the data directory, outside the log's mirror.
        let follow_bookmark_dir = settings.data_dir.clone();
        let (engine, log) = match &cluster {
            None => (Arc::new(open_engine(&settings, hub.clone())?), None),
            Some(options) => {
                settings.data_dir = cluster::mirror_dir(&settings.data_dir);
                let start = cluster::prepare(options, &settings.data_dir)?;
                let engine = Arc::new(open_engine(&settings, hub.clone())?);
                engine.enter_cluster_mode(start.epoch.clone());
                let log = Cluster::start(options, start, engine.clone(), &settings.data_dir)?;
                (engine, Some(log))
            }
        };
        let pipeline = Pipeline::new(engine.clone(), geo.clone(), log.clone());
        let library = Library::new(settings.data_dir.clone(), engine.kept_indexes());
        if let Some(pace) = demo {
            demo::start(pace, &hub, &engine, &library, &settings.data_dir)?;
        }
        let access = Access::new(
            settings.ingest_token.clone(),
            address.ip().is_loopback(),
            settings.read_token.clone(),
            settings.allowed_origins.clone(),
            settings.allowed_host.clone(),
            TokenKeys::load(
                settings.jwt_secret.as_deref(),
                settings.jwt_public_key.as_deref(),
            )?,
        );
        let tracker = Tracker::start(engine.clone(), pipeline.clone(), settings.links(address));
        let consumers = consume::start(
            &settings.consume,
            &node_name(address),
            pipeline.clone(),
            &follow_bookmark_dir,
        )?;
        let parts = Parts {
            tracker: web::Data::from(tracker),
            pipeline: web::Data::new(pipeline.clone()),
            cluster: web::Data::new(log.clone()),
            engine: web::Data::from(engine.clone()),
            geo: web::Data::from(geo),
            hub: web::Data::from(hub.clone()),
            library: web::Data::from(library),
            access: web::Data::new(access),
            consumers: web::Data::new(consumers),
            dub: web::Data::new(DubHook::new(settings.dub_webhook_secret.as_deref())),
            metrics: web::Data::new(metrics),
            exports: web::Data::from(replay::export::Exports::new(settings.max_exports)),
            limits: web::Data::new(IngestLimits {
                max_body_bytes: settings.max_body_bytes,
                max_line_bytes: settings.max_line_bytes,
                max_json_bytes_in_flight: settings.max_json_bytes_in_flight,
                json_bytes_in_flight: Default::default(),
            }),
        };
        actix_web::rt::spawn(hub.run(settings.tick()));
        telemetry::spawn_upkeep(parts.metrics.get_ref().clone());
        if settings.fsync == FsyncPolicy::Interval {
            spawn_fsync_timer(engine.sync_files(), settings.fsync_interval());
        }
        // In cluster mode the log's follower gives up held events, by the log's clock.
        if let Some(max_age) = settings.held_expiry()
            && log.is_none()
        {
            spawn_expiry_timer(engine.clone(), max_age);
        }
        if let Some(source) = settings.follow.clone() {
            ingest::follow(source, pipeline, &follow_bookmark_dir)
                .context("cannot start following")?;
        }
        let server = http_server(parts, listener, settings.workers)?;
        // Tests and the bench read the address at the end of this line.
        tracing::info!(
            "viralglobe-server {} listening on http://{address}",
            env!("CARGO_PKG_VERSION")
        );
        Ok(Self { server, engine })
    }

    /// Serves until SIGTERM or Ctrl-C, then writes everything out.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.engine.flush();
        tracing::info!("stopped; recordings flushed");
        result
    }
}

/// This node's name among the consumers of a broker's group: the same at every restart (its
/// unacknowledged messages come back to it), different from another node's on the same host.
fn node_name(address: SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "viralglobe".into());
    format!("{host}-{}", address.port())
}

/// The City database: `--geoip`, or for the demo without one, the demo's own.
fn open_geo(settings: &Settings, demo: bool) -> anyhow::Result<GeoDb> {
    Ok(match (&settings.geoip, demo) {
        (None, true) => GeoDb::from_bytes(
            embedded::GEO_DB.to_vec(),
            "embedded demo database",
            settings.geo_cache,
        )?,
        _ => GeoDb::open(settings.geoip.as_deref(), settings.geo_cache)?,
    })
}

/// The engine, with the state its recordings describe.
fn open_engine(settings: &Settings, hub: Arc<Hub>) -> anyhow::Result<Engine> {
    Engine::open(
        &settings.data_dir,
        settings.fsync == FsyncPolicy::Always,
        HeldLimits {
            max: settings.max_held,
            max_per_campaign: settings.max_held_per_campaign,
        },
        settings.max_open_recordings,
        hub,
    )
    .with_context(|| {
        format!(
            "cannot open the recordings in {}",
            settings.data_dir.display()
        )
    })
}

/// `--fsync interval`: every recording to disk on a timer, off the ingest path.
fn spawn_fsync_timer(files: recording::SyncFiles, every: std::time::Duration) {
    actix_web::rt::spawn(async move {
        let mut interval = tokio::time::interval(every);
        loop {
            interval.tick().await;
            let files = files.clone();
            let _ = tokio::task::spawn_blocking(move || recording::sync_all(&files)).await;
        }
    });
}

/// Gives up held events that waited longer than `max_age`, checking a few times per `max_age`.
fn spawn_expiry_timer(engine: Arc<Engine>, max_age: std::time::Duration) {
    let every = (max_age / 8).clamp(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(30),
    );
    actix_web::rt::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let engine = engine.clone();
            // Failures are logged and counted there; the next round tries again.
            let _ = tokio::task::spawn_blocking(move || engine.expire_held(max_age)).await;
        }
    });
}

/// What request handlers are handed, each part on its own (`web::Data<T>`).
#[derive(Clone)]
struct Parts {
    tracker: web::Data<Tracker>,
    pipeline: web::Data<Pipeline>,
    cluster: web::Data<Option<Arc<Cluster>>>,
    engine: web::Data<Engine>,
    geo: web::Data<GeoDb>,
    hub: web::Data<Hub>,
    library: web::Data<Library>,
    access: web::Data<Access>,
    consumers: web::Data<Consumers>,
    dub: web::Data<DubHook>,
    metrics: web::Data<metrics_exporter_prometheus::PrometheusHandle>,
    limits: web::Data<IngestLimits>,
    exports: web::Data<replay::export::Exports>,
}

/// The HTTP server: every worker serves [`app`]. A request to upgrade to a websocket is taken out
/// of the HTTP/1 dispatcher with its connection, and a new connection that asks for an event
/// stream never goes to it: both are served by a second copy of the app ([`ws::serve_upgrade`],
/// [`ws::serve_events`]), so that their sessions run on the bare connection.
fn http_server(
    parts: Parts,
    listener: TcpListener,
    workers: Option<usize>,
) -> anyhow::Result<Server> {
    let address = listener.local_addr()?;
    let mut builder = actix_server::Server::build().shutdown_timeout(3);
    if let Some(workers) = workers {
        builder = builder.workers(workers.max(1));
    }
    let stopping = builder.graceful_shutdown_signal();
    let server = builder.listen("viralglobe", listener, move || {
        let upgrades = parts.clone();
        let sessions = parts.clone();
        let stopping = stopping.clone();
        let http = HttpService::build()
            // What actix-web's `HttpServer` sets: idle keep-alive, the time to send a request's
            // head, and to close after the answer.
            .keep_alive(KeepAlive::Timeout(Duration::from_secs(5)))
            .client_request_timeout(Duration::from_secs(5))
            .client_disconnect_timeout(Duration::from_secs(1))
            .graceful_shutdown_signal(move || {
                let stopping = stopping.clone();
                async move { stopping.notified().await }
            })
            .local_addr(address)
            .upgrade(fn_factory(move || {
                let app = app(upgrades.clone()).into_factory();
                async move {
                    let app = Rc::new(app.new_service(AppConfig::default()).await?);
                    Ok::<_, ()>(fn_service(move |(req, framed)| {
                        ws::serve_upgrade(app.clone(), req, framed)
                    }))
                }
            }))
            .finish(map_config(app(parts.clone()), |_| AppConfig::default()))
            .tcp();
        fn_factory(move || {
            let http = http.new_service(());
            let app = app(sessions.clone()).into_factory();
            async move {
                let http = Rc::new(http.await?);
                let app = Rc::new(app.new_service(AppConfig::default()).await?);
                // For reading an event stream's request: the date its answer carries is kept
                // by one timer per worker.
                let config = ServiceConfig::default();
                Ok::<_, ()>(fn_service(move |tcp: TcpStream| {
                    let (http, app, config) = (http.clone(), app.clone(), config.clone());
                    async move {
                        let_stalled_readers_go(&tcp);
                        match ws::asks_for_events(&tcp).await {
                            Some(true) => Box::pin(ws::serve_events(app, tcp, config)).await,
                            Some(false) => http.call(tcp).await?,
                            None => {}
                        }
                        Ok::<_, DispatchError>(())
                    }
                }))
            }
        })
    })?;
    Ok(server.run())
}

/// The application: shared state, middleware and routes.
fn app(
    parts: Parts,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let access = parts.access.clone();
    App::new()
        .app_data(parts.tracker.clone())
        .app_data(parts.pipeline.clone())
        .app_data(parts.cluster.clone())
        .app_data(parts.engine.clone())
        .app_data(parts.geo.clone())
        .app_data(parts.hub.clone())
        .app_data(parts.library.clone())
        .app_data(parts.access.clone())
        .app_data(parts.consumers.clone())
        .app_data(parts.dub.clone())
        .app_data(parts.metrics.clone())
        .app_data(parts.limits.clone())
        .app_data(parts.exports.clone())
        .wrap_fn(|req, service| {
            // One line at debug and a duration per request, by the route that served it.
            // The method and path only when they are logged: this runs for every request.
            let logged = tracing::enabled!(tracing::Level::DEBUG)
                .then(|| (req.method().clone(), req.path().to_owned()));
            let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
            let started = std::time::Instant::now();
            let response = service.call(req);
            async move {
                let response = response.await?;
                let status = response.status();
                let elapsed = started.elapsed();
                metrics::histogram!("viralglobe_http_request_seconds",
                        "route" => route, "status" => status_label(status))
                .record(elapsed);
                if let Some((method, path)) = logged {
                    tracing::debug!(%method, path, status = status.as_u16(),
                            elapsed_ms = elapsed.as_secs_f64() * 1e3, "request");
                }
                Ok(response)
            }
        })
        .wrap_fn(move |req, service| {
            // Browser pages elsewhere may read the API (GET; tokens go in the query).
            let get = req.method() == Method::GET;
            let allow = get
                .then(|| req.headers().get(header::ORIGIN))
                .flatten()
                .and_then(|origin| access.cors_allow_origin(origin));
            let response = service.call(req);
            async move {
                let mut response = response.await?;
                let headers = response.headers_mut();
                if let Some(allow) = allow {
                    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
                }
                // Every GET answer depends on the Origin, even one asked without it: a
                // browser that cached the same-origin copy (an embedded globe's iframe) would
                // otherwise give it, without its CORS header, to another site's page. Added to
                // the Vary already there (compression's), not in its place.
                if get {
                    headers.append(header::VARY, HeaderValue::from_static("Origin"));
                }
                Ok(response)
            }
        })
        .app_data(routes::query_errors())
        .app_data(routes::path_errors())
        // The busiest routes first, ahead of any pattern with a parameter: each of those
        // tried costs a regex match (a tenth of a one-event request's time).
        .configure(links::configure_redirect)
        .configure(ingest::configure)
        .configure(links::configure)
        .configure(hooks::configure)
        .configure(live::configure)
        .configure(replay::configure)
        .configure(routes::configure)
        .default_service(web::to(routes::not_found))
}

/// How long a peer may keep its receive window shut, or leave what was sent unacknowledged,
/// before the kernel drops the connection: longer than a websocket's own silence timeout (its
/// session ends first and says why), short enough that a client that never reads cannot hold a
/// descriptor and a full send buffer for ever after its session ended.
const STALLED_PEER_TIMEOUT: Duration = Duration::from_secs(35);

/// On every accepted connection: `TCP_USER_TIMEOUT`, which Linux applies to a peer that keeps its
/// window shut too. (When a session ends, actix-http still flushes what it had buffered; into a
/// socket that never drains, that waited for ever.)
fn let_stalled_readers_go(tcp: &TcpStream) {
    if let Err(error) = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(STALLED_PEER_TIMEOUT))
    {
        tracing::debug!(%error, "cannot set TCP_USER_TIMEOUT");
    }
}

/// A status as a metric label; the statuses the server answers with are labels made once.
fn status_label(status: actix_web::http::StatusCode) -> metrics::SharedString {
    match status.as_u16() {
        200 => "200".into(),
        201 => "201".into(),
        302 => "302".into(),
        204 => "204".into(),
        400 => "400".into(),
        401 => "401".into(),
        404 => "404".into(),
        413 => "413".into(),
        503 => "503".into(),
        other => other.to_string().into(),
    }
}
