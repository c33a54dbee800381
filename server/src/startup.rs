//! Builds the application from [`Settings`]: rebuilds state from the recordings, binds the
//! listener (port 0 in tests), starts the live ticker, fsync timer and file follower.

use std::{net::TcpListener, sync::Arc};

use actix_web::{
    App, HttpServer,
    dev::{Server, Service},
    http::{
        Method,
        header::{self, HeaderValue},
    },
    middleware, web,
};
use anyhow::Context;

use crate::{
    auth::Access,
    demo::{
        embedded,
        player::{self, Pace},
    },
    engine::Engine,
    geo::GeoDb,
    ingest::{self, Pipeline},
    live::{self, Hub},
    recording,
    replay::{self, Library},
    routes,
    settings::{FsyncPolicy, Settings},
    state::AppState,
    telemetry,
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
    pub fn build_with(settings: Settings, demo: Option<Pace>) -> anyhow::Result<Self> {
        let metrics = telemetry::metrics_handle();
        let geo = match (&settings.geoip, demo) {
            (None, Some(_)) => GeoDb::from_bytes(
                embedded::GEO_DB.to_vec(),
                "embedded demo database",
                settings.geo_cache,
            )?,
            _ => GeoDb::open(settings.geoip.as_deref(), settings.geo_cache)?,
        };
        let geo = Arc::new(geo);
        let hub = Hub::new(settings.subscriber_queue);
        let engine = Arc::new(
            Engine::open(
                &settings.data_dir,
                settings.fsync,
                settings.max_held,
                hub.clone(),
            )
            .with_context(|| {
                format!(
                    "cannot open the recordings in {}",
                    settings.data_dir.display()
                )
            })?,
        );
        let pipeline = Pipeline::new(engine.clone(), geo);
        let library = Library::new(settings.data_dir.clone());
        if let Some(pace) = demo {
            player::spawn(hub.clone(), pace).context("cannot start the demo player")?;
            let (engine, library) = (engine.clone(), library.clone());
            let data_dir = settings.data_dir.clone();
            std::thread::Builder::new()
                .name("demo-loader".into())
                .spawn(move || {
                    match player::unpack(&data_dir) {
                        Ok(path) => {
                            library.register(embedded::CAMPAIGN, path, player::recording_epoch())
                        }
                        Err(error) => tracing::error!(%error, "the demo cannot be replayed"),
                    }
                    engine.load(player::records());
                })
                .context("cannot load the demo campaign")?;
            tracing::info!(
                speed = pace.speed,
                max_rate = pace.max_rate,
                "playing the demo campaign"
            );
        }

        let listener = TcpListener::bind(settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let address = listener.local_addr()?;
        let access = Access::new(
            settings.ingest_token.clone(),
            address.ip().is_loopback(),
            settings.read_token.clone(),
            settings.allowed_origins.clone(),
        );
        let state = web::Data::new(AppState {
            pipeline: pipeline.clone(),
            hub: hub.clone(),
            library,
            access,
            metrics,
            max_body_bytes: settings.max_body_bytes,
            max_line_bytes: settings.max_line_bytes,
        });

        actix_web::rt::spawn(hub.run(settings.tick()));
        if settings.fsync == FsyncPolicy::Interval {
            let files = engine.sync_files();
            let every = settings.fsync_interval();
            actix_web::rt::spawn(async move {
                let mut interval = tokio::time::interval(every);
                loop {
                    interval.tick().await;
                    let files = files.clone();
                    let _ = tokio::task::spawn_blocking(move || recording::sync_all(&files)).await;
                }
            });
        }
        if let Some(source) = settings.follow.clone() {
            ingest::follow(source, pipeline).context("cannot start following")?;
        }

        let mut server = HttpServer::new(move || {
            let access = state.access.clone();
            App::new()
                .app_data(state.clone())
                .wrap_fn(move |req, service| {
                    // Browser pages elsewhere may read the API (GET; tokens go in the query).
                    let allow = (req.method() == Method::GET)
                        .then(|| req.headers().get(header::ORIGIN))
                        .flatten()
                        .and_then(|origin| access.cors_allow_origin(origin));
                    let response = service.call(req);
                    async move {
                        let mut response = response.await?;
                        if let Some(allow) = allow {
                            let headers = response.headers_mut();
                            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
                            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
                        }
                        Ok(response)
                    }
                })
                .route("/", web::get().to(routes::index))
                .route("/app.js", web::get().to(routes::app_js))
                .route("/style.css", web::get().to(routes::style_css))
                .service(
                    web::resource("/world.json")
                        .wrap(middleware::Compress::default())
                        .get(routes::world_json),
                )
                .route("/v1/events", web::post().to(ingest::post_events))
                .route("/v1/live", web::get().to(live::live))
                .route("/v1/campaigns", web::get().to(routes::list_campaigns))
                .route(
                    "/v1/campaigns/{id}/stats",
                    web::get().to(routes::campaign_stats),
                )
                .route(
                    "/v1/campaigns/{id}/replay",
                    web::get().to(replay::session::replay),
                )
                .route(
                    "/v1/campaigns/{id}/timeline",
                    web::get().to(replay::timeline::timeline),
                )
                .route(
                    "/v1/campaigns/{id}/export",
                    web::get().to(replay::export::export_route),
                )
                .route("/healthz", web::get().to(routes::healthz))
                .route("/metrics", web::get().to(routes::metrics))
        })
        .shutdown_timeout(3);
        if let Some(workers) = settings.workers {
            server = server.workers(workers.max(1));
        }
        let server = server.listen(listener)?.run();
        tracing::info!("listening on http://{address}");
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
