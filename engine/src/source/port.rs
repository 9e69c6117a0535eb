//! What a source needs from the log: append records with a resume point, read the resume point, and read
//! what the view knows (for the relist diff). The pipeline's log implements it ([`PipelineLog`]); tests use
//! an in-memory fake.

use std::future::Future;

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
}
