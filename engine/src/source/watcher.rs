//! The list+watch state machine of one (cluster × kind).
//!
//! Unlike `kube::runtime::watcher`, it keeps the raw resourceVersion of every event and bookmark, because
//! that is what gets persisted as the resume point, atomically with the records, in the log.
//!
//! ```text
//!            resume point in the log?
//!   start ──── yes ──────────────────────────────► Resume{rv}
//!     │                                              │ open watch (bookmarks on, timeoutSeconds)
//!     no                                             ▼
//!     ▼                                          Watching{rv, stream} ──events──► append(batch, rv') ─┐
//!   Empty ── list all pages, diff vs view ──►        ▲                                               │
//!     ▲       append(records, list rv)               └───────────────────────────────────────────────┘
//!     │
//!     └── 410 Gone (watch open, ERROR event, or expired continue token)
//! ```
//!
//! * **Empty**: no usable resourceVersion. List every page (consistent snapshot at the first page's
//!   resourceVersion), append `Added`/`Modified` records for objects the view does not have at that
//!   version and synthetic `Deleted` records for objects the view has but the list does not; the last append
//!   carries the list's resourceVersion as resume point. Then → Resume. A failed list → backoff → Empty.
//! * **Resume{rv}**: open a watch from `rv`. 410 Gone → Empty (relist). Other errors → backoff → Resume{rv}.
//! * **Watching{rv, stream}**: read events in batches (the first awaited, more taken while immediately
//!   ready, up to `max_batch`); append them with the last event's or bookmark's resourceVersion as resume
//!   point, and only then read more (backpressure). Stream end (server timeout, dropped connection, or no
//!   byte for `timeoutSeconds` + 30 s) →
//!   Resume{rv}, after a backoff if the stream delivered nothing. An `ERROR` event with 410 → Empty; any
//!   other error → backoff → Resume{rv}.
//!
//! A failed append acknowledged nothing, and the resume point did not move: after a backoff the source
//! re-watches from the last acknowledged resourceVersion (the API server's watch history is the buffer,
//! so the syncer never holds a copy of a batch to retry it); during a relist it starts the relist over.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};
use tokio::sync::watch;

use crate::metrics as m;
use crate::record::{EventType, Record};

use super::mapping::{self, ClusterRole};
use super::relist::{self, Known};
use super::{ClusterHealth, KindSpec, PortError, SourceConfig, SourceLog};

type EventStream = BoxStream<'static, kube::Result<WatchEvent<DynamicObject>>>;

/// States of the list+watch protocol (see the module documentation for the diagram).
enum State {
    /// No usable resourceVersion: relist and diff against the view.
    Empty,
    /// Open a watch from this resourceVersion.
    Resume {
        /// Last resourceVersion durably appended.
        resource_version: String,
    },
    /// Reading an open watch.
    Watching {
        /// Last resourceVersion durably appended.
        resource_version: String,
        /// The open stream.
        stream: EventStream,
        /// When the stream was opened (a stream that ends at once with nothing backs off).
        opened: Instant,
        /// Events read from this stream.
        events: u64,
    },
}

/// Why a step failed: decides between relist and re-watch.
#[derive(Debug, thiserror::Error)]
enum StepError {
    /// The resourceVersion (or continue token) is too old: relist.
    #[error("resource version too old (410 Gone)")]
    Gone,
    /// Listing failed.
    #[error("failed to list")]
    List(#[source] kube::Error),
    /// Opening the watch failed.
    #[error("failed to open watch")]
    Watch(#[source] kube::Error),
    /// The stream reported an error.
    #[error("watch stream failed")]
    Stream(#[source] kube::Error),
    /// The server sent an ERROR event other than 410.
    #[error("watch error event: {0}")]
    ErrorEvent(String),
    /// Reading the view failed.
    #[error("failed to read the view")]
    View(#[source] PortError),
    /// Appending to the log failed (nothing of the batch was acknowledged).
    #[error("failed to append to the log")]
    Append(#[source] PortError),
}

/// Exponential backoff with jitter: `initial`, doubling up to `max`; reset after success.
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }

    /// The next delay (with up to 25 % jitter).
    fn delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let jitter = base.mul_f64(f64::from(nanos % 1000) / 4000.0);
        base + jitter
    }
}

/// The list+watch task of one (cluster × kind).
pub struct KindWatcher<L> {
    api: Api<DynamicObject>,
    role: ClusterRole,
    kind: KindSpec,
    log: L,
    cfg: SourceConfig,
    health: Arc<ClusterHealth>,
    up: bool,
    backoff: Backoff,
    label_selector: Option<String>,
    watches_opened: u64,
}

impl<L: SourceLog> KindWatcher<L> {
    /// A watcher of `kind` in the cluster behind `client`.
    pub fn new(
        client: kube::Client,
        role: ClusterRole,
        kind: KindSpec,
        log: L,
        cfg: SourceConfig,
        health: Arc<ClusterHealth>,
    ) -> Self {
        let api = Api::all_with(client, &kind.resource);
        let label_selector = kind.watch_for(&role).selector().map(str::to_owned);
        let backoff = Backoff::new(cfg.backoff_initial, cfg.backoff_max);
        Self {
            api,
            role,
            kind,
            log,
            cfg,
            health,
            up: false,
            backoff,
            label_selector,
            watches_opened: 0,
        }
    }

    /// Runs until `shutdown` turns true (or its sender is dropped). Every await point is cancel-safe with
    /// respect to the log: an append is either acknowledged with its resume point or not at all.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let cluster = self.role.cluster().to_string();
        m::zero_init_source(&self.kind.kind);
        let mut state = match self.log.resume_point(&cluster, &self.kind.kind) {
            Ok(Some(rv)) if !rv.is_empty() => State::Resume {
                resource_version: rv,
            },
            Ok(_) => State::Empty,
            Err(error) => {
                tracing::warn!(%cluster, kind = %self.kind.kind, %error, "cannot read resume point; relisting");
                State::Empty
            }
        };
        loop {
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                next = self.step(state_take(&mut state)) => state = next,
            }
        }
        self.set_up(false);
        tracing::debug!(%cluster, kind = %self.kind.kind, "source stopped");
    }

    fn set_up(&mut self, up: bool) {
        self.health.set(self.up, up);
        self.up = up;
    }

    async fn sleep_backoff(&mut self) {
        let d = self.backoff.delay();
        tokio::time::sleep(d).await;
    }

    /// One transition of the state machine.
    async fn step(&mut self, state: State) -> State {
        match state {
            State::Empty => {
                metrics::counter!(m::RELISTS_TOTAL, "kind" => self.kind.kind.clone()).increment(1);
                match self.relist().await {
                    Ok(resource_version) => State::Resume { resource_version },
                    Err(error) => {
                        self.set_up(false);
                        tracing::warn!(cluster = %self.role.cluster(), kind = %self.kind.kind, error = %error_chain(&error), "relist failed");
                        self.sleep_backoff().await;
                        State::Empty
                    }
                }
            }
            State::Resume { resource_version } => {
                let mut wp = WatchParams::default().timeout(self.cfg.watch_timeout_secs);
                if let Some(sel) = &self.label_selector {
                    wp = wp.labels(sel);
                }
                if self.watches_opened > 0 {
                    metrics::counter!(m::WATCH_RESTARTS_TOTAL, "kind" => self.kind.kind.clone())
                        .increment(1);
                }
                self.watches_opened += 1;
                match self.api.watch(&wp, &resource_version).await {
                    Ok(stream) => {
                        self.set_up(true);
                        State::Watching {
                            resource_version,
                            stream: stream.boxed(),
                            opened: Instant::now(),
                            events: 0,
                        }
                    }
                    Err(e) if is_gone(&e) => {
                        self.set_up(false);
                        State::Empty
                    }
                    Err(e) => {
                        self.set_up(false);
                        let error = StepError::Watch(e);
                        tracing::warn!(cluster = %self.role.cluster(), kind = %self.kind.kind, error = %error_chain(&error), "watch failed");
                        self.sleep_backoff().await;
                        State::Resume { resource_version }
                    }
                }
            }
            State::Watching {
                resource_version,
                stream,
                opened,
                events,
            } => {
                self.read_batch(resource_version, stream, opened, events)
                    .await
            }
        }
    }

    /// Reads one batch of events from the stream and appends it.
    async fn read_batch(
        &mut self,
        mut resource_version: String,
        mut stream: EventStream,
        opened: Instant,
        mut events: u64,
    ) -> State {
        // The server ends the watch after `timeoutSeconds`; a connection that stays silent well past that
        // (a dead peer, no FIN) is treated as dropped.
        let silence = Duration::from_secs(u64::from(self.cfg.watch_timeout_secs) + 30);
        let next = tokio::time::timeout(silence, stream.next())
            .await
            .unwrap_or_default();
        let Some(first) = next else {
            // Server timeout, dropped or silent connection: re-watch from where we are.
            if events == 0 && opened.elapsed() < Duration::from_secs(1) {
                self.set_up(false);
                self.sleep_backoff().await;
            }
            return State::Resume { resource_version };
        };
        let mut records = Vec::new();
        let mut new_rv: Option<String> = None;
        let mut outcome: Option<StepError> = None;
        let mut item = Some(first);
        while let Some(next) = item.take() {
            match next {
                Ok(WatchEvent::Added(o)) => {
                    self.push(&mut records, &mut new_rv, EventType::Added, o)
                }
                Ok(WatchEvent::Modified(o)) => {
                    self.push(&mut records, &mut new_rv, EventType::Modified, o)
                }
                Ok(WatchEvent::Deleted(o)) => {
                    self.push(&mut records, &mut new_rv, EventType::Deleted, o)
                }
                Ok(WatchEvent::Bookmark(b)) => new_rv = Some(b.metadata.resource_version),
                Ok(WatchEvent::Error(status)) if status.code == 410 => {
                    outcome = Some(StepError::Gone)
                }
                Ok(WatchEvent::Error(status)) => {
                    outcome = Some(StepError::ErrorEvent(format!(
                        "{} ({}): {}",
                        status.code, status.reason, status.message
                    )))
                }
                Err(e) if is_gone(&e) => outcome = Some(StepError::Gone),
                Err(e) => outcome = Some(StepError::Stream(e)),
            }
            events += 1;
            if outcome.is_some() || records.len() >= self.cfg.max_batch {
                break;
            }
            // Take more events only while they are immediately available.
            item = stream.next().now_or_never().flatten();
        }
        let new_rv = new_rv.filter(|rv| !rv.is_empty());
        if !records.is_empty() || new_rv.is_some() {
            if let Err(error) = self.append(records, new_rv.clone()).await {
                // Nothing of this batch was acknowledged: the server still has it. Re-watch from the last
                // acknowledged version (410 there means a relist).
                self.set_up(false);
                tracing::warn!(cluster = %self.role.cluster(), kind = %self.kind.kind, error = %error_chain(&error), "log append failed; re-watching from the last acknowledged version");
                self.sleep_backoff().await;
                return State::Resume { resource_version };
            }
            if let Some(rv) = new_rv {
                resource_version = rv;
            }
        }
        match outcome {
            None => {
                self.backoff.reset();
                State::Watching {
                    resource_version,
                    stream,
                    opened,
                    events,
                }
            }
            Some(StepError::Gone) => {
                self.set_up(false);
                State::Empty
            }
            Some(error) => {
                self.set_up(false);
                tracing::warn!(cluster = %self.role.cluster(), kind = %self.kind.kind, error = %error_chain(&error), "watch stream failed");
                self.sleep_backoff().await;
                State::Resume { resource_version }
            }
        }
    }

    /// Maps one event's object to a record (if it concerns a served tenant) and notes its resourceVersion.
    fn push(
        &self,
        records: &mut Vec<Record>,
        new_rv: &mut Option<String>,
        event: EventType,
        object: DynamicObject,
    ) {
        metrics::counter!(m::WATCH_EVENTS_TOTAL, "kind" => self.kind.kind.clone(), "cluster_class" => self.role.class())
            .increment(1);
        if let Some(rv) = object.metadata.resource_version.clone() {
            *new_rv = Some(rv);
        }
        let value = match serde_json::to_value(&object) {
            Ok(v) => v,
            Err(error) => {
                tracing::warn!(kind = %self.kind.kind, %error, "cannot serialize watched object; skipped");
                return;
            }
        };
        match self.to_record(event, value, mapping::now_micros()) {
            Some(record) => records.push(record),
            None => {
                metrics::counter!(m::SOURCE_UNMAPPED_TOTAL, "kind" => self.kind.kind.clone())
                    .increment(1);
            }
        }
    }

    /// The record of one observed object, mapped by the kind's [`mapping::SuperKey`] rule (`None`: it
    /// concerns no served tenant). Super namespaces are looked up in the view for `SuperKey::Namespace`.
    fn to_record(&self, event: EventType, object: serde_json::Value, now: u64) -> Option<Record> {
        let owner = |super_ns: &str| {
            let ns = self
                .log
                .known_object(crate::record::SUPER_CLUSTER, "Namespace", "", super_ns)
                .ok()
                .flatten()?;
            mapping::namespace_owner_of(&ns)
        };
        mapping::to_record_with(
            &self.role,
            &self.kind.kind,
            &self.kind.super_key,
            event,
            object,
            now,
            &owner,
        )
    }

    /// Appends one batch with its resume point. On error nothing of it was acknowledged.
    async fn append(
        &self,
        records: Vec<Record>,
        resume_rv: Option<String>,
    ) -> Result<(), StepError> {
        let cluster = self.role.cluster();
        self.log
            .append(cluster, &self.kind.kind, records, resume_rv)
            .await
            .map_err(|e| {
                metrics::counter!(m::SOURCE_APPEND_ERRORS_TOTAL, "kind" => self.kind.kind.clone())
                    .increment(1);
                StepError::Append(e)
            })
    }

    /// Lists every page, appends the diff against the view, and returns the list's resourceVersion.
    async fn relist(&mut self) -> Result<String, StepError> {
        let cluster = self.role.cluster().to_string();
        let kind = self.kind.kind.clone();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut list_rv: Option<String> = None;
        let mut continue_token: Option<String> = None;
        loop {
            let mut lp = ListParams::default().limit(self.cfg.page_size);
            if let Some(sel) = &self.label_selector {
                lp = lp.labels(sel);
            }
            if let Some(token) = &continue_token {
                lp = lp.continue_token(token);
            }
            let page = match self.api.list(&lp).await {
                Ok(page) => page,
                Err(e) if is_gone(&e) => return Err(StepError::Gone),
                Err(e) => return Err(StepError::List(e)),
            };
            if list_rv.is_none() {
                list_rv = page.metadata.resource_version.clone();
            }
            let now = mapping::now_micros();
            let mut records = Vec::new();
            for object in page.items {
                let ns = object.metadata.namespace.clone().unwrap_or_default();
                let name = object.metadata.name.clone().unwrap_or_default();
                let rv = object.metadata.resource_version.clone().unwrap_or_default();
                let known = self
                    .log
                    .known_version(&cluster, &kind, &ns, &name)
                    .map_err(StepError::View)?;
                seen.insert((ns, name));
                let Some(event) = relist::listed_event(known.as_deref(), &rv) else {
                    continue;
                };
                let Ok(value) = serde_json::to_value(&object) else {
                    continue;
                };
                if let Some(r) = self.to_record(event, value, now) {
                    records.push(r);
                }
            }
            continue_token = page.metadata.continue_.filter(|t| !t.is_empty());
            if continue_token.is_none() {
                let list_rv = list_rv.unwrap_or_default();
                records.extend(self.deletions(&seen, &list_rv)?);
                let resume = Some(list_rv.clone()).filter(|rv| !rv.is_empty());
                self.append(records, resume).await?;
                self.backoff.reset();
                return Ok(list_rv);
            }
            if !records.is_empty() {
                self.append(records, None).await?;
            }
        }
    }

    /// Synthetic `Deleted` records for objects the view knows but a list at `list_rv` did not return.
    fn deletions(
        &self,
        seen: &HashSet<(String, String)>,
        list_rv: &str,
    ) -> Result<Vec<Record>, StepError> {
        let cluster = self.role.cluster();
        let known = self
            .log
            .known_all(cluster, &self.kind.kind)
            .map_err(StepError::View)?;
        let now = mapping::now_micros();
        let mut out = Vec::new();
        for Known {
            namespace,
            name,
            resource_version,
            object,
        } in known
        {
            if seen.contains(&(namespace, name)) || !relist::is_gone(&resource_version, list_rv) {
                continue;
            }
            if let Some(mut r) = self.to_record(EventType::Deleted, object, now) {
                r.resource_version = list_rv.to_string();
                out.push(r);
            }
        }
        Ok(out)
    }
}

/// Takes the state out, leaving `Empty` (the loop always puts the next state back).
fn state_take(state: &mut State) -> State {
    std::mem::replace(state, State::Empty)
}

/// Whether a kube error is 410 Gone / Expired.
fn is_gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 410)
}

/// An error with its chain of causes, for logs.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter_and_resets() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_millis(800);
        let mut b = Backoff::new(initial, max);
        let mut base = initial;
        for _ in 0..8 {
            let d = b.delay();
            assert!(
                d >= base && d <= base + base / 4,
                "{d:?} not in [{base:?}, +25%]"
            );
            base = (base * 2).min(max);
        }
        b.reset();
        let d = b.delay();
        assert!(
            d >= initial && d <= initial + initial / 4,
            "{d:?} after reset"
        );
    }
}
