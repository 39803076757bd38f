//! Registered sections and the worker that runs untrusted generators (the
//! application's sections and its configuration's `Serialize`) under a time
//! budget, catching panics.
//!
//! A generator runs on a worker thread (`guru-sections`) while the reporter
//! waits for it with a deadline. If it overruns, the report shows it as
//! failed and goes on; the stuck worker is abandoned (it finishes on its own
//! and its late result is dropped) and a new worker serves the rest. A
//! generator that is still running from an earlier report is not started
//! again — it is reported as still running — so a hung generator costs one
//! thread, not one per report. Idle workers block in `recv`: no wake-ups.

use std::any::Any;
use std::fmt::Display;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What a section generator may return: text, or a `Result` whose error is
/// shown as the section's failure.
pub trait SectionOutput {
    /// The section's text, or why it failed.
    fn into_section(self) -> Result<String, String>;
}

impl SectionOutput for String {
    fn into_section(self) -> Result<String, String> {
        Ok(self)
    }
}

impl SectionOutput for &str {
    fn into_section(self) -> Result<String, String> {
        Ok(self.to_string())
    }
}

impl SectionOutput for std::borrow::Cow<'_, str> {
    fn into_section(self) -> Result<String, String> {
        Ok(self.into_owned())
    }
}

impl<T: SectionOutput, E: Display> SectionOutput for Result<T, E> {
    fn into_section(self) -> Result<String, String> {
        match self {
            Ok(t) => t.into_section(),
            Err(e) => Err(format!("returned an error: {e}")),
        }
    }
}

type Generator = dyn Fn() -> Result<String, String> + Send + Sync;

/// A generator and whether a run of it is still in progress.
pub(crate) struct Job {
    pub(crate) name: String,
    generator: Box<Generator>,
    running: AtomicBool,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

impl Job {
    pub(crate) fn new(
        name: impl Into<String>,
        generator: impl Fn() -> Result<String, String> + Send + Sync + 'static,
    ) -> Arc<Job> {
        Arc::new(Job {
            name: name.into(),
            generator: Box::new(generator),
            running: AtomicBool::new(false),
        })
    }
}

static REGISTRY: Mutex<Vec<Arc<Job>>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Adds a section to every report, after Configuration, in registration
/// order. It may be called before or after installation, from any thread.
/// The generator runs on guru's worker thread when a report is made, never in
/// a signal handler; if it panics, returns an error or overruns the section
/// time budget ([`Builder::section_timeout`](crate::Builder::section_timeout),
/// default 2 s), the report shows it as failed and carries on.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// static OPEN: AtomicUsize = AtomicUsize::new(3);
/// guru::register_section("Connections", || {
///     format!("{} open", OPEN.load(Ordering::Relaxed))
/// });
/// guru::register_section("Cache", || -> Result<String, std::io::Error> {
///     Ok("warm".into())
/// });
/// ```
pub fn register_section<F, R>(name: impl Into<String>, generator: F)
where
    F: Fn() -> R + Send + Sync + 'static,
    R: SectionOutput,
{
    let job = Job::new(name, move || generator().into_section());
    lock(&REGISTRY).push(job);
}

/// The registered sections, in order.
pub(crate) fn registered() -> Vec<Arc<Job>> {
    lock(&REGISTRY).clone()
}

/// How a generator ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok(String),
    Failed(String),
}

type Reply = (Arc<Job>, Sender<Result<String, String>>);

/// Runs generators on a worker thread with a deadline.
#[derive(Debug, Default)]
pub(crate) struct Runner {
    worker: Option<Sender<Reply>>,
}

impl Runner {
    /// Runs `job` with budget `budget`.
    pub(crate) fn run(&mut self, job: &Arc<Job>, budget: Duration) -> Outcome {
        if job.running.swap(true, Ordering::AcqRel) {
            return Outcome::Failed(
                "still running since an earlier report (it overran its time budget then); not started again".into(),
            );
        }
        let (tx, rx) = channel();
        let sent = self
            .worker()
            .and_then(|w| w.send((job.clone(), tx)).map_err(|e| e.to_string()));
        if let Err(e) = sent {
            // No worker thread could be started: run it here, still catching panics.
            self.worker = None;
            let result = run_caught(job);
            job.running.store(false, Ordering::Release);
            return match result {
                Ok(text) => Outcome::Ok(text),
                Err(why) => Outcome::Failed(format!("{why} (worker unavailable: {e})")),
            };
        }
        match rx.recv_timeout(budget) {
            Ok(Ok(text)) => Outcome::Ok(text),
            Ok(Err(why)) => Outcome::Failed(why),
            Err(RecvTimeoutError::Timeout) => {
                // Abandon the worker: it is stuck in this generator.
                self.worker = None;
                Outcome::Failed(format!(
                    "timed out: no result within its {} ms budget (still running)",
                    budget.as_millis()
                ))
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.worker = None;
                Outcome::Failed("the worker thread died".into())
            }
        }
    }

    fn worker(&mut self) -> Result<&Sender<Reply>, String> {
        if self.worker.is_none() {
            let (tx, rx) = channel::<Reply>();
            std::thread::Builder::new()
                .name("guru-sections".into())
                .spawn(move || worker_loop(rx))
                .map_err(|e| format!("cannot start the section worker: {e}"))?;
            self.worker = Some(tx);
        }
        self.worker
            .as_ref()
            .ok_or_else(|| "no section worker".to_string())
    }
}

fn worker_loop(rx: Receiver<Reply>) {
    while let Ok((job, reply)) = rx.recv() {
        let result = run_caught(&job);
        job.running.store(false, Ordering::Release);
        let _ = reply.send(result);
    }
}

fn run_caught(job: &Job) -> Result<String, String> {
    match catch_unwind(AssertUnwindSafe(|| (job.generator)())) {
        Ok(r) => r,
        Err(payload) => Err(format!("panicked: {}", panic_message(payload.as_ref()))),
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a non-string panic payload)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes() {
        let mut r = Runner::default();
        let budget = Duration::from_secs(10);
        let ok = Job::new("ok", || Ok("fine".into()));
        assert_eq!(r.run(&ok, budget), Outcome::Ok("fine".into()));
        let err = Job::new("err", || Err::<&str, _>("nope").into_section());
        assert_eq!(
            r.run(&err, budget),
            Outcome::Failed("returned an error: nope".into())
        );
        let boom = Job::new("boom", || panic!("kaboom {}", 7));
        assert_eq!(
            r.run(&boom, budget),
            Outcome::Failed("panicked: kaboom 7".into())
        );
        // The runner still works after a panic.
        assert_eq!(r.run(&ok, budget), Outcome::Ok("fine".into()));
    }

    #[test]
    fn overrun_is_reported_and_not_restarted() {
        let (release_tx, release_rx) = channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let slow = Job::new("slow", move || {
            let _ = lock(&release_rx).recv();
            Ok("late".into())
        });
        let mut r = Runner::default();
        let Outcome::Failed(why) = r.run(&slow, Duration::from_millis(20)) else {
            panic!("expected a timeout");
        };
        assert!(why.contains("timed out"), "{why}");
        let Outcome::Failed(why) = r.run(&slow, Duration::from_millis(20)) else {
            panic!("expected still running");
        };
        assert!(why.contains("still running"), "{why}");
        // Other sections run on a fresh worker meanwhile.
        let ok = Job::new("ok", || Ok("fine".into()));
        assert_eq!(
            r.run(&ok, Duration::from_secs(10)),
            Outcome::Ok("fine".into())
        );
        release_tx.send(()).unwrap();
    }
}
