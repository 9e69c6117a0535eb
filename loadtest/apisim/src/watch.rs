//! Watch streams: newline-delimited JSON events, one chunk per batch, read by each watcher from the store's
//! shared history (no per-watcher queues; a watcher that falls behind the history gets 410 Gone).
//!
//! A watch is a small state machine:
//! - `Initial`: synthetic ADDED events for the objects of a snapshot (watch from "now", or
//!   `sendInitialEvents=true`), then, for streaming lists, a BOOKMARK marked `k8s.io/initial-events-end`;
//! - `Streaming`: every change after the cursor, filtered by namespace and selectors (an object that stops
//!   matching yields DELETED, one that starts matching yields ADDED, like the real watch cache), with
//!   periodic BOOKMARKs when asked for, until `timeoutSeconds`;
//! - `Done`: after a 410 ERROR event, the timeout, or the server going away.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::filter::Filter;
use crate::handlers::{ApiRequest, Body};
use crate::registry::storage_key;
use crate::resource_type::ResourceType;
use crate::state::ApiState;
use crate::status::ApiError;
use crate::store::{Event, EventType, ObjectKey, StoreError, StoredObject};
use crate::table::IncludeObject;

/// Watch duration when the client sets no `timeoutSeconds` (the real server picks 30–60 min).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// Events read from the history per chunk.
const EVENTS_PER_CHUNK: usize = 256;
/// Synthetic ADDED events per chunk.
const INITIAL_PER_CHUNK: usize = 256;

enum Phase {
    Initial {
        items: VecDeque<(ObjectKey, StoredObject)>,
        end_bookmark: bool,
    },
    Streaming,
    /// An injected 410: one ERROR event, then the end.
    ForcedGone,
    Done,
}

struct Watcher {
    state: Arc<ApiState>,
    resource: String,
    kind: String,
    api_version: String,
    filter: Filter,
    cursor: u64,
    rx: tokio::sync::watch::Receiver<u64>,
    bookmark_every: Option<Duration>,
    next_bookmark: Instant,
    deadline: Instant,
    phase: Phase,
    /// Render event objects as Tables (`kubectl get -w`): the type and `includeObject`.
    table: Option<(ResourceType, IncludeObject)>,
    /// Objects sent so far (the first Table carries the column definitions).
    sent: u64,
    /// Close the stream after this many events (injected fault).
    cut_after: Option<u64>,
}

/// Starts a watch on `rt` (optionally on one object, for the legacy `/watch/.../{name}` path).
pub async fn serve(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    req: &ApiRequest,
    name: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let namespace = req.path.namespace.as_deref().filter(|_| rt.namespaced);
    let field_selector = match (req.param("fieldSelector").filter(|s| !s.is_empty()), name) {
        (Some(f), Some(n)) => Some(format!("{f},metadata.name={n}")),
        (None, Some(n)) => Some(format!("metadata.name={n}")),
        (f, None) => f.map(str::to_string),
    };
    let filter = Filter::new(
        rt,
        namespace,
        req.param("labelSelector"),
        field_selector.as_deref(),
    )?;
    let bookmarks = req.flag("allowWatchBookmarks");
    let send_initial = req
        .param("sendInitialEvents")
        .map(|v| v == "true" || v == "1");
    let rv_param = req.param("resourceVersion").filter(|s| !s.is_empty());
    let rv_match = req.param("resourceVersionMatch").filter(|s| !s.is_empty());
    if send_initial.is_some() && rv_match != Some("NotOlderThan") {
        return Err(ApiError::invalid_watch(
            "resourceVersionMatch",
            "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    if send_initial == Some(true) && !bookmarks {
        return Err(ApiError::invalid_watch(
            "allowWatchBookmarks",
            "sendInitialEvents requires setting allowWatchBookmarks to true",
        ));
    }
    if send_initial.is_none() && rv_match.is_some() {
        return Err(ApiError::bad_request(
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ));
    }
    let timeout = req
        .param("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    let resource = storage_key(rt);
    let rx = state.store.subscribe();
    let (cursor, phase) = match (send_initial, rv_param) {
        (Some(true), _) | (None, None | Some("0")) => {
            let snap = state.store.list(&resource, namespace);
            let items: VecDeque<_> = snap
                .items
                .into_iter()
                .filter(|(k, o)| filter.matches(k, o))
                .collect();
            (
                snap.revision,
                Phase::Initial {
                    items,
                    end_bookmark: send_initial == Some(true),
                },
            )
        }
        (_, None | Some("0")) => (state.store.revision(), Phase::Streaming),
        (_, Some(rv)) => {
            let rv: u64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?;
            // Like the watch cache: a future resourceVersion is waited for (bounded), then 504.
            crate::handlers::wait_for_revision(state, rv).await?;
            (rv, Phase::Streaming)
        }
    };
    let phase = if state.faults.take_forced_gone() {
        Phase::ForcedGone
    } else {
        phase
    };
    let now = Instant::now();
    let bookmark_every = bookmarks.then_some(state.config.bookmark_interval);
    let watcher = Watcher {
        state: state.clone(),
        resource,
        kind: rt.kind.clone(),
        api_version: rt.api_version(),
        filter,
        cursor,
        rx,
        bookmark_every,
        next_bookmark: now + bookmark_every.unwrap_or(DEFAULT_TIMEOUT),
        deadline: now + timeout,
        phase,
        table: crate::tables::wants_table(req)
            .then(|| (rt.clone(), crate::tables::include_object(req))),
        sent: 0,
        cut_after: state.faults.watch_cut_after(),
    };
    let stream = futures::stream::unfold(watcher, |mut w| async move {
        let chunk = w.next_chunk().await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), w))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

fn push_event(buf: &mut BytesMut, event_type: &str, object: &[u8]) {
    buf.put_slice(b"{\"type\":\"");
    buf.put_slice(event_type.as_bytes());
    buf.put_slice(b"\",\"object\":");
    buf.put_slice(object);
    buf.put_slice(b"}\n");
}

/// The previous version of an object with its resourceVersion replaced (DELETED for "stopped matching").
fn with_rv(obj: &StoredObject, rv: u64) -> Vec<u8> {
    let mut v = obj.value();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

impl Watcher {
    fn bookmark(&self, buf: &mut BytesMut, initial_end: bool) {
        let mut meta = json!({"resourceVersion": self.cursor.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.kind, "apiVersion": self.api_version, "metadata": meta});
        push_event(buf, "BOOKMARK", obj.to_string().as_bytes());
    }

    fn gone(&mut self, buf: &mut BytesMut, oldest: u64) {
        let status = ApiError::expired(format!(
            "too old resource version: {} ({})",
            self.cursor, oldest
        ))
        .to_status();
        push_event(buf, "ERROR", status.to_string().as_bytes());
        self.phase = Phase::Done;
    }

    /// Appends one object event (as a Table when the client asked for Tables).
    fn emit(&mut self, buf: &mut BytesMut, event_type: &str, object: &[u8]) {
        match &self.table {
            Some((rt, include)) => {
                let table = crate::tables::watch_event_table(rt, *include, object, self.sent == 0);
                push_event(buf, event_type, &table);
            }
            None => push_event(buf, event_type, object),
        }
        self.sent += 1;
    }

    /// Whether the injected watch cut has been reached.
    fn cut(&self) -> bool {
        self.cut_after.is_some_and(|n| self.sent >= n)
    }

    fn push_change(&mut self, buf: &mut BytesMut, event: &Event) {
        if *event.resource != *self.resource {
            return;
        }
        let now = self.filter.matches(&event.key, &event.object);
        match event.event_type {
            EventType::Added | EventType::Deleted => {
                if now {
                    self.emit(buf, event.event_type.as_str(), &event.object.json);
                }
            }
            EventType::Modified => {
                let before = event
                    .prev
                    .as_ref()
                    .is_some_and(|p| self.filter.matches(&event.key, p));
                match (before, now) {
                    (true, true) => self.emit(buf, "MODIFIED", &event.object.json),
                    (false, true) => self.emit(buf, "ADDED", &event.object.json),
                    (true, false) => {
                        if let Some(prev) = &event.prev {
                            self.emit(buf, "DELETED", &with_rv(prev, event.rv));
                        }
                    }
                    (false, false) => {}
                }
            }
        }
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            let mut buf = BytesMut::new();
            if self.cut() {
                return None;
            }
            match &mut self.phase {
                Phase::Done => return None,
                Phase::ForcedGone => {
                    let oldest = self.state.store.revision();
                    self.gone(&mut buf, oldest);
                    return Some(buf.freeze());
                }
                Phase::Initial {
                    items,
                    end_bookmark,
                } => {
                    let batch: Vec<_> = items.drain(..items.len().min(INITIAL_PER_CHUNK)).collect();
                    let finished = items.is_empty();
                    let end = *end_bookmark;
                    for (_, obj) in batch {
                        self.emit(&mut buf, "ADDED", &obj.json);
                        if self.cut() {
                            break;
                        }
                    }
                    if finished {
                        self.phase = Phase::Streaming;
                        if end {
                            self.bookmark(&mut buf, true);
                        }
                    }
                    if !buf.is_empty() {
                        return Some(buf.freeze());
                    }
                }
                Phase::Streaming => {
                    if Instant::now() >= self.deadline {
                        return None;
                    }
                    self.rx.borrow_and_update();
                    match self.state.store.events_after(self.cursor, EVENTS_PER_CHUNK) {
                        Err(StoreError::Compacted { oldest, .. }) => {
                            self.gone(&mut buf, oldest);
                            return Some(buf.freeze());
                        }
                        Err(_) => return None,
                        Ok(events) if !events.is_empty() => {
                            for event in &events {
                                self.push_change(&mut buf, event);
                                self.cursor = event.rv;
                                if self.cut() {
                                    break;
                                }
                            }
                            if !buf.is_empty() {
                                return Some(buf.freeze());
                            }
                        }
                        Ok(_) => {
                            let bookmark_at = self.next_bookmark;
                            tokio::select! {
                                changed = self.rx.changed() => {
                                    if changed.is_err() {
                                        return None;
                                    }
                                }
                                _ = tokio::time::sleep_until(bookmark_at), if self.bookmark_every.is_some() => {
                                    self.next_bookmark = Instant::now() + self.bookmark_every.unwrap_or(DEFAULT_TIMEOUT);
                                    self.bookmark(&mut buf, false);
                                    return Some(buf.freeze());
                                }
                                _ = tokio::time::sleep_until(self.deadline) => return None,
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::Method;
    use serde_json::{Value, json};

    use crate::SimConfig;
    use crate::testing::{call, state, state_with, watch_events};

    /// Secrets, because every namespace starts with a `kube-root-ca.crt` config map.
    const CMS: &str = "/api/v1/namespaces/default/secrets";
    const LIMIT: Duration = Duration::from_secs(5);

    fn cm(name: &str, app: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "labels": {"app": app}}})
    }

    fn summary(events: &[Value]) -> Vec<(String, String)> {
        events
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap_or("").to_string(),
                    e["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn watch_from_now_lists_then_follows_changes() {
        let st = state();
        assert_eq!(call(&st, Method::POST, CMS, cm("a", "web")).await.0, 201);
        let resp_events = {
            let st2 = st.clone();
            let watch = tokio::spawn(async move {
                watch_events(&st2, &format!("{CMS}?watch=true&timeoutSeconds=1"), LIMIT).await
            });
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(
                call(
                    &st,
                    Method::PATCH,
                    &format!("{CMS}/a"),
                    json!({"data": {"k": "v"}})
                )
                .await
                .0,
                200
            );
            assert_eq!(call(&st, Method::POST, CMS, cm("b", "web")).await.0, 201);
            assert_eq!(
                call(&st, Method::DELETE, &format!("{CMS}/a"), Value::Null)
                    .await
                    .0,
                200
            );
            watch.await.expect("watch task")
        };
        let s = summary(&resp_events);
        let expect = [
            ("ADDED", "a"),
            ("MODIFIED", "a"),
            ("ADDED", "b"),
            ("DELETED", "a"),
        ];
        assert_eq!(
            s,
            expect.map(|(t, n)| (t.to_string(), n.to_string())).to_vec(),
            "{resp_events:?}"
        );
        let rv = |i: usize| {
            resp_events[i]["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
                .parse::<u64>()
                .unwrap_or(0)
        };
        assert!(
            rv(0) < rv(1) && rv(1) < rv(2) && rv(2) < rv(3),
            "resourceVersions must grow: {resp_events:?}"
        );
    }

    #[tokio::test]
    async fn selector_transitions_become_added_and_deleted() {
        let st = state();
        call(&st, Method::POST, CMS, cm("a", "web")).await;
        call(&st, Method::POST, CMS, cm("b", "db")).await;
        let from = st.store.revision();
        let uri = format!(
            "{CMS}?watch=true&labelSelector=app%3Dweb&resourceVersion={from}&timeoutSeconds=1"
        );
        call(
            &st,
            Method::PATCH,
            &format!("{CMS}/a"),
            json!({"metadata": {"labels": {"app": "db"}}}),
        )
        .await;
        call(
            &st,
            Method::PATCH,
            &format!("{CMS}/b"),
            json!({"metadata": {"labels": {"app": "web"}}}),
        )
        .await;
        call(
            &st,
            Method::PATCH,
            &format!("{CMS}/a"),
            json!({"data": {"x": "y"}}),
        )
        .await;
        let events = watch_events(&st, &uri, LIMIT).await;
        assert_eq!(
            summary(&events),
            vec![("DELETED".into(), "a".into()), ("ADDED".into(), "b".into())],
            "{events:?}"
        );
        // The DELETED event carries the old state (still app=web) at the revision of the change.
        assert_eq!(events[0]["object"]["metadata"]["labels"]["app"], "web");
        assert_eq!(
            events[0]["object"]["metadata"]["resourceVersion"],
            (from + 1).to_string()
        );
    }

    #[tokio::test]
    async fn too_old_resource_version_is_410_expired() {
        let st = state_with(SimConfig {
            history_window: 3,
            ..SimConfig::default()
        });
        for i in 0..6 {
            call(&st, Method::POST, CMS, cm(&format!("c{i}"), "x")).await;
        }
        let events = watch_events(
            &st,
            &format!("{CMS}?watch=true&resourceVersion=1&timeoutSeconds=1"),
            LIMIT,
        )
        .await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["type"], "ERROR");
        assert_eq!(events[0]["object"]["code"], 410);
        assert_eq!(events[0]["object"]["reason"], "Expired");
        let oldest = st.store.oldest_resumable();
        assert_eq!(
            events[0]["object"]["message"],
            format!("too old resource version: 1 ({oldest})")
        );
        // Resuming inside the window works.
        let events = watch_events(
            &st,
            &format!("{CMS}?watch=true&resourceVersion={oldest}&timeoutSeconds=1"),
            LIMIT,
        )
        .await;
        assert_eq!(events.len(), 3, "{events:?}");
    }

    #[tokio::test]
    async fn streaming_list_ends_initial_events_with_annotated_bookmark() {
        let st = state();
        call(&st, Method::POST, CMS, cm("a", "x")).await;
        call(&st, Method::POST, CMS, cm("b", "x")).await;
        let uri = format!(
            "{CMS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"
        );
        let events = watch_events(&st, &uri, LIMIT).await;
        let types: Vec<&str> = events
            .iter()
            .map(|e| e["type"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(types, vec!["ADDED", "ADDED", "BOOKMARK"], "{events:?}");
        let bookmark = &events[2]["object"];
        assert_eq!(
            bookmark["metadata"]["annotations"]["k8s.io/initial-events-end"],
            "true"
        );
        assert_eq!(bookmark["kind"], "Secret");
        assert_eq!(
            bookmark["metadata"]["resourceVersion"],
            st.store.revision().to_string()
        );
        let (code, _) = call(
            &st,
            Method::GET,
            &format!("{CMS}?watch=true&sendInitialEvents=true"),
            Value::Null,
        )
        .await;
        assert_eq!(
            code, 422,
            "sendInitialEvents needs resourceVersionMatch=NotOlderThan"
        );
    }

    #[tokio::test]
    async fn bookmarks_carry_the_current_revision() {
        let st = state_with(SimConfig {
            bookmark_interval: Duration::from_millis(100),
            ..SimConfig::default()
        });
        let now = st.store.revision();
        let uri = format!(
            "{CMS}?watch=true&allowWatchBookmarks=true&resourceVersion={now}&timeoutSeconds=1"
        );
        let events = watch_events(&st, &uri, LIMIT).await;
        assert!(events.len() >= 2, "expected periodic bookmarks: {events:?}");
        let now_text = now.to_string();
        assert!(events.iter().all(|e| e["type"] == "BOOKMARK"
            && e["object"]["metadata"]["resourceVersion"].as_str() == Some(now_text.as_str())));
        let without = watch_events(
            &st,
            &format!("{CMS}?watch=true&resourceVersion={now}&timeoutSeconds=1"),
            LIMIT,
        )
        .await;
        assert!(without.is_empty(), "no bookmarks unless asked: {without:?}");
    }

    #[tokio::test]
    async fn injected_faults_cut_watches_and_force_gone() {
        let st = state();
        for i in 0..5 {
            call(&st, Method::POST, CMS, cm(&format!("c{i}"), "x")).await;
        }
        let config = crate::faults::FaultConfig {
            watch_cut_after_events: Some(2),
            ..Default::default()
        };
        st.faults.set(config).expect("fault config");
        let events = watch_events(&st, &format!("{CMS}?watch=true&timeoutSeconds=5"), LIMIT).await;
        assert_eq!(events.len(), 2, "{events:?}");
        st.faults
            .set(crate::faults::FaultConfig::default())
            .expect("fault config");
        st.faults.force_gone_next_watch();
        let events = watch_events(&st, &format!("{CMS}?watch=true&timeoutSeconds=1"), LIMIT).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["object"]["code"], 410);
        let events = watch_events(&st, &format!("{CMS}?watch=true&timeoutSeconds=1"), LIMIT).await;
        assert_eq!(
            events.len(),
            5,
            "only the next watch is forced to 410: {events:?}"
        );
    }

    #[tokio::test]
    async fn future_resource_versions_are_waited_for_then_refused() {
        let st = state();
        let next = st.store.revision() + 1;
        let writer = {
            let st = st.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                call(&st, Method::POST, CMS, cm("late", "x")).await
            })
        };
        let uri = format!("{CMS}?watch=true&resourceVersion={next}&timeoutSeconds=1");
        let events = watch_events(&st, &uri, LIMIT).await;
        assert_eq!(writer.await.expect("writer").0, 201);
        assert!(
            events.is_empty(),
            "the event at the requested revision itself is not sent: {events:?}"
        );
        let far = st.store.revision() + 100;
        let (code, s) = call(
            &st,
            Method::GET,
            &format!("{CMS}?watch=true&resourceVersion={far}"),
            Value::Null,
        )
        .await;
        assert_eq!((code, s["reason"].as_str()), (504, Some("Timeout")), "{s}");
    }
}
