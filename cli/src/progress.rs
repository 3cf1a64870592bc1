//! Progress on stderr while a run is driven: live bars when stderr is a terminal (one line per
//! step with its fan-out counters, one per running instance with its elapsed time and last
//! heartbeat), plain lines otherwise. The journal is the record; this is only for people.
//! Plugin text (summaries, messages, step keys made from items) is shown through
//! [`visible`], so an escape sequence in it never reaches the terminal.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use drover_engine::display::visible;
use drover_engine::journal::RunId;
use drover_engine::run::{Progress, StepProgress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One plain line per event: what logs and CI see.
pub struct Lines;

impl Progress for Lines {
    fn line(&self, _run_id: RunId, text: &str) {
        eprintln!("  {}", visible(text));
    }
}

/// Live bars through indicatif.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<Shown>,
}

#[derive(Default)]
struct Shown {
    steps: HashMap<String, ProgressBar>,
    running: HashMap<String, ProgressBar>,
}

impl Bars {
    /// Bars on stderr.
    pub fn new() -> Bars {
        Bars { multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()), bars: Mutex::default() }
    }

    fn step_bar(&self) -> ProgressBar {
        let style = ProgressStyle::with_template("{prefix:>24.bold} [{bar:24.cyan/blue}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        self.multi.add(ProgressBar::new(0).with_style(style))
    }

    fn running_bar(&self) -> ProgressBar {
        let style = ProgressStyle::with_template("{prefix:>24} {spinner} {elapsed:>4} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bar = self.multi.add(ProgressBar::new_spinner().with_style(style));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }
}

impl Progress for Bars {
    fn line(&self, _run_id: RunId, text: &str) {
        let _ = self.multi.println(format!("  {}", visible(text)));
    }

    fn wants_snapshots(&self) -> bool {
        true
    }

    fn snapshot(&self, _run_id: RunId, steps: &[StepProgress]) {
        let Ok(mut shown) = self.bars.lock() else { return };
        let mut still_running = Vec::new();
        for step in steps {
            let bar = shown.steps.entry(step.id.clone()).or_insert_with(|| {
                let bar = self.step_bar();
                bar.set_prefix(visible(&step.id).into_owned());
                bar
            });
            bar.set_length(step.total as u64);
            bar.set_position(step.done as u64);
            bar.set_message(counters(step));
            if step.done == step.total && step.total > 0 && !bar.is_finished() {
                bar.finish();
            }
            for instance in &step.running {
                still_running.push(instance.key.clone());
                let bar = shown.running.entry(instance.key.clone()).or_insert_with(|| {
                    let bar = self.running_bar();
                    bar.set_prefix(format!("▶ {}", visible(&instance.key)));
                    bar
                });
                let message = match &instance.heartbeat {
                    Some((Some(p), m)) => format!("{:>3.0}% {m}", p * 100.0),
                    Some((None, m)) => m.clone(),
                    None => String::new(),
                };
                bar.set_message(visible(&message).into_owned());
            }
        }
        shown.running.retain(|key, bar| {
            let keep = still_running.contains(key);
            if !keep {
                bar.finish_and_clear();
            }
            keep
        });
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        if let Ok(shown) = self.bars.lock() {
            for bar in shown.running.values() {
                bar.finish_and_clear();
            }
            for bar in shown.steps.values() {
                bar.abandon();
            }
        }
    }
}

/// `2 failed, 3 waiting for a slot, 1 waiting for an operator`.
fn counters(step: &StepProgress) -> String {
    let mut parts = Vec::new();
    if !step.running.is_empty() {
        parts.push(format!("{} running", step.running.len()));
    }
    if step.failed > 0 {
        parts.push(format!("{} failed", step.failed));
    }
    if step.waiting_for_slot > 0 {
        parts.push(format!("{} waiting for a slot", step.waiting_for_slot));
    }
    if step.waiting > 0 {
        parts.push(format!("{} waiting for an operator or a timer", step.waiting));
    }
    parts.join(", ")
}
