//! Built-in scheduler + kubelet (enabled by `SimConfig::kubelet`), like kwok: it registers Nodes (Ready,
//! with capacity and addresses) and their heartbeat Leases in `kube-node-lease`, binds pending pods to nodes
//! round-robin (`PodScheduled`), reports them Running after `start_delay` (pod IP from the node's slice of
//! `pod_cidr`, conditions, container statuses), and finishes graceful pod deletions.
//!
//! It follows the store's history like any watcher (one task per instance) and relists when it falls
//! behind the history window.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::KubeletConfig;
use crate::handlers::{DeleteOptions, WriteScope, create_object, delete_object, update_with};
use crate::registry::builtin;
use crate::state::ApiState;
use crate::store::{EventType, ObjectKey, StoreError};

/// Events read from the history per round.
const EVENTS_PER_ROUND: usize = 1024;
/// Time a container takes to stop when its pod is deleted gracefully (capped by the grace period).
const STOP_DELAY: Duration = Duration::from_millis(100);
/// The node lease duration the real kubelet uses.
const LEASE_DURATION_SECONDS: u64 = 40;

/// Starts the scheduler + kubelet of an instance (no-op without a kubelet configuration).
pub fn spawn(state: &Arc<ApiState>) {
    let Some(config) = state.config.kubelet.clone() else {
        return;
    };
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        let Some(state) = weak.upgrade() else {
            return;
        };
        let mut kubelet = match Kubelet::new(&state, config) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "built-in kubelet did not start");
                return;
            }
        };
        drop(state);
        kubelet.run(weak).await;
    });
}

/// Something the kubelet does at a given time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    /// Report the pod Running.
    Start { key: ObjectKey, uid: String },
    /// Delete the pod for good (its containers have stopped).
    Finish { key: ObjectKey, uid: String },
}

struct Node {
    name: String,
    ip: String,
    /// First address of the node's /24 of pod IPs.
    pod_base: u32,
    used: HashSet<u32>,
}

struct Kubelet {
    config: KubeletConfig,
    nodes: Vec<Node>,
    next_node: usize,
    cursor: u64,
    timers: BinaryHeap<Reverse<(Instant, Action)>>,
    /// Pods already given a timer (key → uid), so repeated events do not re-arm them.
    armed: HashMap<ObjectKey, (String, bool)>,
    /// Pod key → (node index, IP offset) of assigned pod IPs.
    ips: HashMap<ObjectKey, (usize, u32)>,
    next_heartbeat: Instant,
}

fn parse_cidr(cidr: &str) -> Option<u32> {
    let (addr, _) = cidr.split_once('/')?;
    addr.parse::<Ipv4Addr>().ok().map(u32::from)
}

fn micro_time() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

impl Kubelet {
    fn new(state: &Arc<ApiState>, config: KubeletConfig) -> Result<Kubelet, String> {
        let pod_base = parse_cidr(&config.pod_cidr)
            .ok_or_else(|| format!("invalid pod CIDR {}", config.pod_cidr))?;
        let node_rt = builtin("", "nodes").ok_or("nodes type missing")?;
        let lease_rt = builtin("coordination.k8s.io", "leases").ok_or("leases type missing")?;
        let mut nodes = Vec::new();
        for i in 0..config.nodes {
            let name = format!("{}{i}", config.node_name_prefix);
            let ip =
                Ipv4Addr::from(u32::from(config.first_node_ip).wrapping_add(i as u32)).to_string();
            let base = pod_base.wrapping_add((i as u32) << 8);
            let node = node_object(
                &name,
                &ip,
                &Ipv4Addr::from(base).to_string(),
                config.kubelet_port,
            );
            let created = create_object(state, &node_rt, node).map_err(|e| e.message)?;
            let uid = created
                .value()
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease",
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}]},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": micro_time()},
            });
            create_object(state, &lease_rt, lease).map_err(|e| e.message)?;
            nodes.push(Node {
                name,
                ip,
                pod_base: base,
                used: HashSet::new(),
            });
        }
        Ok(Kubelet {
            next_heartbeat: Instant::now() + config.heartbeat_interval,
            config,
            nodes,
            next_node: 0,
            cursor: 0,
            timers: BinaryHeap::new(),
            armed: HashMap::new(),
            ips: HashMap::new(),
        })
    }

    async fn run(&mut self, weak: Weak<ApiState>) {
        let Some(mut rx) = weak.upgrade().map(|s| s.store.subscribe()) else {
            return;
        };
        if let Some(state) = weak.upgrade() {
            self.resync(&state);
        }
        loop {
            let Some(state) = weak.upgrade() else {
                return;
            };
            rx.borrow_and_update();
            self.follow(&state);
            self.fire_due(&state);
            if Instant::now() >= self.next_heartbeat {
                self.heartbeat(&state);
                self.next_heartbeat = Instant::now() + self.config.heartbeat_interval;
            }
            drop(state);
            let next_timer = self
                .timers
                .peek()
                .map(|Reverse((at, _))| *at)
                .unwrap_or(self.next_heartbeat);
            let wake = next_timer.min(self.next_heartbeat);
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Handles every pod change since the cursor (relisting when the history no longer reaches back).
    fn follow(&mut self, state: &Arc<ApiState>) {
        for _ in 0..64 {
            match state.store.events_after(self.cursor, EVENTS_PER_ROUND) {
                Err(StoreError::Compacted { .. }) => {
                    self.resync(state);
                    return;
                }
                Err(_) => return,
                Ok(events) if events.is_empty() => return,
                Ok(events) => {
                    for event in events {
                        self.cursor = event.rv;
                        if &*event.resource != "/pods" {
                            continue;
                        }
                        if event.event_type == EventType::Deleted {
                            self.forget(&event.key);
                        } else {
                            self.observe(state, &event.key, &event.object.value());
                        }
                    }
                }
            }
        }
    }

    fn resync(&mut self, state: &Arc<ApiState>) {
        let snapshot = state.store.list("/pods", None);
        self.cursor = snapshot.revision;
        let live: HashSet<ObjectKey> = snapshot.items.iter().map(|(k, _)| k.clone()).collect();
        let gone: Vec<ObjectKey> = self
            .ips
            .keys()
            .filter(|k| !live.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.forget(&key);
        }
        for (key, obj) in snapshot.items {
            self.observe(state, &key, &obj.value());
        }
    }

    fn forget(&mut self, key: &ObjectKey) {
        self.armed.remove(key);
        if let Some((node, offset)) = self.ips.remove(key)
            && let Some(n) = self.nodes.get_mut(node)
        {
            n.used.remove(&offset);
        }
    }

    fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Reacts to the current state of one pod.
    fn observe(&mut self, state: &Arc<ApiState>, key: &ObjectKey, pod: &Value) {
        let uid = pod
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let node = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        let deleting = pod.pointer("/metadata/deletionTimestamp").is_some();
        let phase = pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        if node.is_empty() {
            let scheduler = pod
                .pointer("/spec/schedulerName")
                .and_then(Value::as_str)
                .unwrap_or("default-scheduler");
            if !deleting && scheduler == "default-scheduler" && !self.nodes.is_empty() {
                let target = self.nodes[self.next_node % self.nodes.len()].name.clone();
                self.next_node = self.next_node.wrapping_add(1);
                if let Some(pods) = builtin("", "pods")
                    && let Err(e) = crate::handlers::bind_pod(state, &pods, key, &target)
                {
                    tracing::debug!(pod = %key.name, error = %e.message, "scheduling failed");
                }
            }
            return;
        }
        if self.node_index(node).is_none() {
            return;
        }
        let armed = self.armed.get(key).cloned();
        if deleting {
            if armed
                .as_ref()
                .is_some_and(|(u, finishing)| *u == uid && *finishing)
            {
                return;
            }
            let grace = pod
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let delay = STOP_DELAY.min(Duration::from_secs(grace));
            self.armed.insert(key.clone(), (uid.clone(), true));
            self.timers.push(Reverse((
                Instant::now() + delay,
                Action::Finish {
                    key: key.clone(),
                    uid,
                },
            )));
            return;
        }
        if phase == "Pending" && armed.is_none_or(|(u, _)| u != uid) {
            self.armed.insert(key.clone(), (uid.clone(), false));
            self.timers.push(Reverse((
                Instant::now() + self.config.start_delay,
                Action::Start {
                    key: key.clone(),
                    uid,
                },
            )));
        }
    }

    fn fire_due(&mut self, state: &Arc<ApiState>) {
        let now = Instant::now();
        while self
            .timers
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= now)
        {
            let Some(Reverse((_, action))) = self.timers.pop() else {
                break;
            };
            match action {
                Action::Start { key, uid } => self.start_pod(state, &key, &uid),
                Action::Finish { key, uid } => {
                    let Some(pods) = builtin("", "pods") else {
                        continue;
                    };
                    let opts = DeleteOptions {
                        grace_period_seconds: Some(0),
                        precondition_uid: Some(uid),
                        ..DeleteOptions::default()
                    };
                    if let Err(e) = delete_object(state, &pods, &key, &opts)
                        && e.code != 404
                        && e.code != 409
                    {
                        tracing::debug!(pod = %key.name, error = %e.message, "finishing pod deletion failed");
                    }
                }
            }
        }
    }

    fn allocate_ip(&mut self, key: &ObjectKey, node: usize) -> String {
        if let Some((n, offset)) = self.ips.get(key)
            && *n == node
        {
            return Ipv4Addr::from(self.nodes[node].pod_base + offset).to_string();
        }
        let n = &mut self.nodes[node];
        let offset = (2..255u32).find(|o| !n.used.contains(o)).unwrap_or(254);
        n.used.insert(offset);
        self.ips.insert(key.clone(), (node, offset));
        Ipv4Addr::from(n.pod_base + offset).to_string()
    }

    fn start_pod(&mut self, state: &Arc<ApiState>, key: &ObjectKey, uid: &str) {
        let Some(pods) = builtin("", "pods") else {
            return;
        };
        let Some(current) = state.store.get("/pods", key) else {
            return;
        };
        let pod = current.value();
        let node_name = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let Some(node) = self.node_index(&node_name) else {
            return;
        };
        let host_ip = self.nodes[node].ip.clone();
        let host_network = pod
            .pointer("/spec/hostNetwork")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let pod_ip = if host_network {
            host_ip.clone()
        } else {
            self.allocate_ip(key, node)
        };
        let result = update_with(state, &pods, key, WriteScope::System, |old| {
            let mut new = old.clone();
            if old.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid)
                || old.pointer("/metadata/deletionTimestamp").is_some()
                || old.pointer("/status/phase").and_then(Value::as_str) != Some("Pending")
            {
                return Ok(new);
            }
            new["status"] = running_status(old, &host_ip, &pod_ip);
            Ok(new)
        });
        if let Err(e) = result
            && e.code != 404
        {
            tracing::debug!(pod = %key.name, error = %e.message, "starting pod failed");
        }
    }

    fn heartbeat(&mut self, state: &Arc<ApiState>) {
        let Some(lease_rt) = builtin("coordination.k8s.io", "leases") else {
            return;
        };
        for node in &self.nodes {
            let key = ObjectKey::new("kube-node-lease", &node.name);
            let _ = update_with(state, &lease_rt, &key, WriteScope::Main, |old| {
                let mut new = old.clone();
                if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.insert("renewTime".into(), json!(micro_time()));
                }
                Ok(new)
            });
        }
    }
}

fn node_object(name: &str, ip: &str, pod_cidr_base: &str, kubelet_port: u16) -> Value {
    let now = crate::handlers::now_rfc3339();
    let condition = |t: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let capacity =
        json!({"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"});
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                       "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64"},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": format!("{pod_cidr_base}/24"), "podCIDRs": [format!("{pod_cidr_base}/24")]},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "nodeInfo": {
                "machineID": "", "systemUUID": "", "bootID": "",
                "kernelVersion": "6.1.0-apisim", "osImage": "apisim simulated node", "containerRuntimeVersion": "containerd://1.7.0",
                "kubeletVersion": "v1.33.0", "kubeProxyVersion": "v1.33.0", "operatingSystem": "linux", "architecture": "amd64",
            },
        },
    })
}

fn running_status(pod: &Value, host_ip: &str, pod_ip: &str) -> Value {
    let now = crate::handlers::now_rfc3339();
    let cond = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let statuses: Vec<Value> = containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("");
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            let uid = pod
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("");
            let id: String = format!("{uid}{i}")
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .chars()
                .take(64)
                .collect();
            json!({
                "name": name,
                "state": {"running": {"startedAt": now}},
                "lastState": {},
                "ready": true,
                "restartCount": 0,
                "image": image,
                "imageID": format!("{image}@sha256:{}", "0".repeat(64)),
                "containerID": format!("containerd://{id}"),
                "started": true,
            })
        })
        .collect();
    let qos = pod
        .pointer("/status/qosClass")
        .cloned()
        .unwrap_or(json!("BestEffort"));
    json!({
        "phase": "Running",
        "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("PodScheduled")],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": now,
        "containerStatuses": statuses,
        "qosClass": qos,
    })
}
