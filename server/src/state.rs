//! What every request handler shares.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::{
    auth::Access, engine::Engine, geo::GeoDb, ingest::Pipeline, live::Hub, replay::Library,
};

pub struct AppState {
    pub pipeline: Pipeline,
    pub hub: Arc<Hub>,
    pub library: Arc<Library>,
    pub access: Access,
    pub metrics: PrometheusHandle,
    pub max_body_bytes: usize,
    pub max_line_bytes: usize,
}

impl AppState {
    pub fn engine(&self) -> &Arc<Engine> {
        self.pipeline.engine()
    }

    pub fn geo(&self) -> &GeoDb {
        self.pipeline.geo()
    }
}
