//! Progress rate over a sliding window of wall time: steps per second and the time left, as a run
//! panel or a progress bar shows them.
//!
//! The meter is fed `(time, step)` pairs from any clock (seconds as `f64`), so tests drive it with a
//! controlled one. The rate is the number of steps completed within the last `window` seconds divided by
//! the time they took, so a burst of fast steps or a slow frame does not swing it the way an
//! exponential average of single step times does, and time spent paused never counts: [`RateMeter::pause`]
//! forgets the window, and the first sample after it starts a new one.

use std::collections::VecDeque;

/// Steps per second over the last `window` seconds of wall time.
#[derive(Clone, Debug)]
pub struct RateMeter {
    window: f64,
    samples: VecDeque<(f64, usize)>,
}

impl RateMeter {
    /// A meter averaging over `window_secs` seconds (clamped to at least a millisecond).
    pub fn new(window_secs: f64) -> Self {
        Self {
            window: window_secs.max(1e-3),
            samples: VecDeque::new(),
        }
    }

    /// Records that `step` steps were complete at time `t` (seconds on the caller's clock; times must not
    /// go backwards — a sample earlier than the last one restarts the window).
    pub fn record(&mut self, t: f64, step: usize) {
        if let Some(&(last_t, last_step)) = self.samples.back()
            && (t < last_t || step < last_step)
        {
            self.samples.clear();
        }
        self.samples.push_back((t, step));
        // Keep one sample at or before the window's start so the window spans `window` seconds.
        while self.samples.len() > 2 && self.samples[1].0 <= t - self.window {
            self.samples.pop_front();
        }
    }

    /// The run paused (or stopped): the time until the next sample is not run time.
    pub fn pause(&mut self) {
        self.samples.clear();
    }

    /// Steps per second over the window; `None` until two samples with time between them exist.
    pub fn steps_per_sec(&self) -> Option<f64> {
        let (t0, s0) = *self.samples.front()?;
        let (t1, s1) = *self.samples.back()?;
        let dt = t1 - t0;
        (dt > 0.0 && s1 > s0).then(|| (s1 - s0) as f64 / dt)
    }

    /// Seconds until `total` steps at the current rate; `None` without a rate.
    pub fn eta_secs(&self, total: usize) -> Option<f64> {
        let rate = self.steps_per_sec()?;
        let (_, step) = *self.samples.back()?;
        Some(total.saturating_sub(step) as f64 / rate)
    }
}

impl Default for RateMeter {
    /// A 10-second window.
    fn default() -> Self {
        Self::new(10.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_runs_report_their_rate_and_time_left() {
        let mut m = RateMeter::new(10.0);
        assert_eq!(m.steps_per_sec(), None);
        for i in 0..=100 {
            m.record(i as f64 * 0.25, i); // 4 steps per second
        }
        assert!((m.steps_per_sec().unwrap() - 4.0).abs() < 1e-9);
        assert!((m.eta_secs(300).unwrap() - 50.0).abs() < 1e-9);
    }

    #[test]
    fn a_rate_change_shows_within_one_window() {
        let mut m = RateMeter::new(10.0);
        let mut t = 0.0;
        let mut step = 0;
        for _ in 0..40 {
            t += 1.0; // 1 step/s for 40 s
            step += 1;
            m.record(t, step);
        }
        for _ in 0..120 {
            t += 0.1; // then 10 steps/s
            step += 1;
            m.record(t, step);
        }
        // 12 s at the new rate > one 10 s window: the old rate is gone.
        assert!(
            (m.steps_per_sec().unwrap() - 10.0).abs() < 0.2,
            "{:?}",
            m.steps_per_sec()
        );
    }

    #[test]
    fn bursty_runs_average_over_the_window() {
        // Steps arrive in bursts: 10 steps at once, then a 1 s gap (a frame or snapshot upload).
        let mut m = RateMeter::new(10.0);
        let mut step = 0;
        for burst in 0..30 {
            let t = burst as f64;
            for k in 0..10 {
                step += 1;
                m.record(t + k as f64 * 1e-3, step);
            }
        }
        let r = m.steps_per_sec().unwrap();
        assert!((r - 10.0).abs() < 0.6, "{r}");
    }

    #[test]
    fn paused_time_does_not_count() {
        let mut m = RateMeter::new(10.0);
        for i in 0..=20 {
            m.record(i as f64 * 0.5, i); // 2 steps/s
        }
        m.pause();
        assert_eq!(m.steps_per_sec(), None);
        // Resumed 100 s later at the same pace.
        for i in 0..=10 {
            m.record(110.0 + i as f64 * 0.5, 20 + i);
        }
        assert!((m.steps_per_sec().unwrap() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn clocks_or_steps_that_go_back_restart_the_window() {
        let mut m = RateMeter::new(10.0);
        m.record(5.0, 50);
        m.record(6.0, 60);
        m.record(1.0, 0); // a resumed run from an earlier checkpoint
        assert_eq!(m.steps_per_sec(), None);
        m.record(2.0, 5);
        assert!((m.steps_per_sec().unwrap() - 5.0).abs() < 1e-9);
    }
}
