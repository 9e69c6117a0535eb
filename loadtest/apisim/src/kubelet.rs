//! Built-in scheduler + kubelet (enabled by `SimConfig::kubelet`).

use std::sync::Arc;

use crate::state::ApiState;

/// Starts the scheduler + kubelet of an instance.
pub fn spawn(_state: &Arc<ApiState>) {}
