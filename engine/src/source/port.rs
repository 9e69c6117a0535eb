//! What a source needs from the log: append records with a resume point, read the resume point, and read
//! what the view knows (for the relist diff). The pipeline's log implements it ([`PipelineLog`]); tests use
//! an in-memory fake.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use crate::log::{LogError, LogSink, ResumePoint, View};
use crate::pipeline::Pipeline;
use crate::record::Record;

use super::relist::Known;

/// An error from the log, as seen by a source (it only logs it and backs off).
pub type PortError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The log as a source sees it.
pub trait SourceLog: Clone + Send + Sync + 'static {
    /// Appends `records` observed in `cluster` for `kind` and, atomically with them, the resume point
    /// `resume_rv` (if any). Resolves once the records are acknowledged; awaits under backpressure.
    fn append(
        &self,
        cluster: &str,
        kind: &str,
        records: Vec<Record>,
        resume_rv: Option<String>,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// The persisted resourceVersion to resume the watch of `cluster` × `kind` from.
    fn resume_point(&self, cluster: &str, kind: &str) -> Result<Option<String>, PortError>;

    /// The version the view knows for one object.
    fn known_version(
        &self,
        cluster: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, PortError>;

    /// Every object the view knows for `cluster` × `kind`.
    fn known_all(&self, cluster: &str, kind: &str) -> Result<Vec<Known>, PortError>;

    /// The object the view holds for one key (used to map super objects through their namespace's marks).
    /// No default: a wrapper that forgot to forward it would silently drop every such object.
    fn known_object(
        &self,
        cluster: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<serde_json::Value>, PortError>;
}

/// The pipeline's log as a [`SourceLog`]: appends through its [`LogSink`], reads the view, and serves the
/// resume points read when the sources were built (each source reads its resume point once, at start).
#[derive(Clone)]
pub struct PipelineLog {
    sink: LogSink,
    view: View,
    resume: Arc<HashMap<(String, String), String>>,
}

impl PipelineLog {
    /// A port on `pipeline` for the given clusters (record cluster names) and kinds.
    pub fn new(
        pipeline: &Pipeline,
        clusters: &[String],
        kinds: &[String],
    ) -> Result<Self, LogError> {
        let mut resume = HashMap::new();
        for cluster in clusters {
            for kind in kinds {
                if let Some(rv) = pipeline.resume_point(cluster, kind)? {
                    resume.insert((cluster.clone(), kind.clone()), rv);
                }
            }
        }
        Ok(Self {
            sink: pipeline.sink(),
            view: pipeline.view(),
            resume: Arc::new(resume),
        })
    }
}

impl SourceLog for PipelineLog {
    async fn append(
        &self,
        cluster: &str,
        kind: &str,
        records: Vec<Record>,
        resume_rv: Option<String>,
    ) -> Result<(), PortError> {
        let resume = resume_rv.map(|resource_version| ResumePoint {
            cluster: cluster.to_string(),
            kind: kind.to_string(),
            resource_version,
        });
        self.sink.append(records, resume).await?;
        Ok(())
    }

    fn resume_point(&self, cluster: &str, kind: &str) -> Result<Option<String>, PortError> {
        Ok(self
            .resume
            .get(&(cluster.to_string(), kind.to_string()))
            .cloned())
    }

    fn known_version(
        &self,
        cluster: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, PortError> {
        Ok(self
            .view
            .get(cluster, kind, namespace, name)?
            .map(|o| o.resource_version))
    }

    fn known_object(
        &self,
        cluster: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<serde_json::Value>, PortError> {
        Ok(self
            .view
            .get(cluster, kind, namespace, name)?
            .map(|o| o.object))
    }

    fn known_all(&self, cluster: &str, kind: &str) -> Result<Vec<Known>, PortError> {
        Ok(self
            .view
            .list(cluster, kind)?
            .into_iter()
            .map(|(namespace, name, o)| Known {
                namespace,
                name,
                resource_version: o.resource_version,
                object: o.object,
            })
            .collect())
    }
}
