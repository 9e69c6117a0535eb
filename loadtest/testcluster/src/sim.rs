//! The in-process simulator backend.

use crate::options::ClusterOptions;
use apisim::{KubeletConfig, SimConfig, Simulator};

/// The simulator configuration for `opts`: the simulator's defaults with the knobs the test set.
pub(crate) fn sim_config(opts: &ClusterOptions) -> SimConfig {
    let mut config = SimConfig::default();
    if let Some(nodes) = opts.kubelet_nodes {
        config.kubelet = Some(KubeletConfig {
            nodes,
            ..KubeletConfig::default()
        });
    }
    if let Some(window) = opts.history_window {
        config.history_window = window;
    }
    if let Some(interval) = opts.bookmark_interval {
        config.bookmark_interval = interval;
    }
    config
}

/// Starts a simulator for `opts` on a free loopback port.
pub(crate) async fn start(opts: &ClusterOptions) -> Result<Simulator, apisim::SimError> {
    Simulator::start(sim_config(opts)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn unset_options_keep_simulator_defaults() {
        let config = sim_config(&ClusterOptions::default());
        let defaults = SimConfig::default();
        assert!(config.kubelet.is_none());
        assert_eq!(config.history_window, defaults.history_window);
        assert_eq!(config.bookmark_interval, defaults.bookmark_interval);
    }

    #[test]
    fn set_options_reach_the_simulator() {
        let opts = ClusterOptions::default()
            .with_kubelet_nodes(2)
            .with_history_window(5)
            .with_bookmark_interval(Duration::from_millis(250));
        let config = sim_config(&opts);
        assert_eq!(config.kubelet.map(|k| k.nodes), Some(2));
        assert_eq!(config.history_window, 5);
        assert_eq!(config.bookmark_interval, Duration::from_millis(250));
    }
}
