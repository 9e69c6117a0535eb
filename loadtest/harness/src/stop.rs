//! Run-wide stop signal: Ctrl-C, the run's `--timeout`, or an error. Every wait in the harness selects on it,
//! so an interrupted run ends promptly and its outputs say why.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

/// A cloneable stop signal carrying the reason of the first stop.
#[derive(Clone)]
pub struct Stop {
    tx: Arc<watch::Sender<bool>>,
    rx: watch::Receiver<bool>,
    reason: Arc<Mutex<Option<String>>>,
}

impl Default for Stop {
    fn default() -> Self {
        Self::new()
    }
}

impl Stop {
    /// A signal that has not fired.
    pub fn new() -> Self {
        let (tx, rx) = watch::channel(false);
        Self {
            tx: Arc::new(tx),
            rx,
            reason: Arc::default(),
        }
    }

    /// Fires the signal; only the first reason is kept.
    pub fn fire(&self, reason: &str) {
        {
            let mut r = self.reason.lock();
            if r.is_none() {
                *r = Some(reason.to_string());
            }
        }
        let _ = self.tx.send(true);
    }

    /// Whether the signal fired.
    pub fn is_stopped(&self) -> bool {
        *self.rx.borrow()
    }

    /// Why the run was stopped early, if it was.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().clone()
    }

    /// Resolves once the signal fires.
    pub async fn stopped(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// [`Stop::stopped`] on an owned signal (for combinators that need a `'static` future).
    pub async fn stopped_owned(self) {
        self.stopped().await
    }

    /// Sleeps for `d` or until the signal fires; returns `false` if it fired.
    pub async fn sleep(&self, d: std::time::Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => !self.is_stopped(),
            _ = self.stopped() => false,
        }
    }

    /// Fires with "interrupted (Ctrl-C)" on Ctrl-C and with "timeout after …" when `timeout` elapses.
    pub fn arm(&self, timeout: std::time::Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = tokio::signal::ctrl_c() => {
                    if r.is_ok() {
                        me.fire("interrupted (Ctrl-C)");
                    }
                }
                _ = tokio::time::sleep(timeout) => {
                    me.fire(&format!("timeout after {} s (--timeout)", timeout.as_secs()));
                }
                _ = me.stopped() => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_reason_wins_and_sleep_is_cut_short() {
        let s = Stop::new();
        assert!(!s.is_stopped());
        assert!(s.sleep(std::time::Duration::from_millis(1)).await);
        s.fire("a");
        s.fire("b");
        assert_eq!(s.reason().as_deref(), Some("a"));
        assert!(!s.sleep(std::time::Duration::from_secs(60)).await);
    }
}
