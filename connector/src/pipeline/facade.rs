//! Publishing a running pipeline's metrics to the `metrics` facade.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::PipelineMetrics;

/// Publishes a pipeline's metrics to the `metrics` facade's recorder while it runs: every
/// second from a task, and a last time when dropped. One lock orders the publishes, so a tick
/// that was midway when the pipeline ended cannot overwrite the final values with older ones.
pub(super) struct FacadePublisher {
    metrics: PipelineMetrics,
    stopped: Arc<std::sync::Mutex<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl FacadePublisher {
    const PERIOD: Duration = Duration::from_secs(1);

    pub(super) fn start(metrics: PipelineMetrics) -> Self {
        metrics.snapshot().publish_to_facade();
        let stopped = Arc::new(std::sync::Mutex::new(false));
        let (watched, flag) = (metrics.clone(), stopped.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Self::PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let stopped = flag.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if *stopped {
                    return;
                }
                watched.snapshot().publish_to_facade();
            }
        });
        Self { metrics, stopped, task }
    }
}

impl Drop for FacadePublisher {
    fn drop(&mut self) {
        self.task.abort();
        let mut stopped = self.stopped.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *stopped = true;
        self.metrics.snapshot().publish_to_facade();
    }
}
