//! Registered sections and the worker that runs untrusted generators (the
//! application's sections and its configuration's `Serialize`) under a time
//! budget, catching panics.
//!
//! A generator runs on a worker thread (`guru-sections`) while the reporter
//! waits for it with a deadline. A report hands all of its generators to the
//! worker at once (one wake-up, not one per section), which runs them in
//! order; each still has its own budget. If it overruns, the report shows it as
//! failed and goes on; the stuck worker is abandoned (it finishes on its own
//! and its late result is dropped) and a new worker serves the rest. A
//! generator that is still running from an earlier report is not started
//! again — it is reported as still running — so a hung generator costs one
//! thread, not one per report. Idle workers block in `recv`: no wake-ups.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt::Display;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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

/// Jobs handed to the worker in one message, run one after the other.
struct Batch {
    /// Jobs not started yet (with their index in the caller's list); the
    /// worker takes them from the front. After a timeout the reporter takes
    /// the rest away, so each job is started by one worker at most.
    pending: Mutex<VecDeque<(usize, Arc<Job>)>>,
    /// Each job's result, as soon as it ends.
    reply: Sender<(usize, Result<String, String>)>,
}

/// Runs generators on a worker thread with a deadline.
///
/// All of a report's generators go to the worker in one batch: one hand-off
/// (and one wake-up of each thread) per report instead of one per section —
/// on a machine whose cores are busy, every hand-off also waits for a core.
#[derive(Debug, Default)]
pub(crate) struct Runner {
    worker: Option<Sender<Arc<Batch>>>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").finish_non_exhaustive()
    }
}

impl Runner {
    /// Runs `job` with budget `budget`.
    #[allow(dead_code)] // used by tests and guru::tokio's task dumps (`--cfg tokio_unstable`)
    pub(crate) fn run(&mut self, job: &Arc<Job>, budget: Duration) -> Outcome {
        let mut outcomes = self.run_all(std::slice::from_ref(job), budget);
        outcomes
            .pop()
            .unwrap_or_else(|| Outcome::Failed("not run".into()))
    }

    /// Runs `jobs` one after the other on the worker, each with budget
    /// `budget` (counted from when the previous one's result came in, so no
    /// job gets less), and returns their outcomes in order. A job that
    /// overruns is reported as failed and abandoned with its worker; the
    /// jobs after it run on a new worker.
    pub(crate) fn run_all(&mut self, jobs: &[Arc<Job>], budget: Duration) -> Vec<Outcome> {
        let mut out: Vec<Option<Outcome>> = vec![None; jobs.len()];
        let mut todo = VecDeque::new();
        for (i, job) in jobs.iter().enumerate() {
            if job.running.swap(true, Ordering::AcqRel) {
                out[i] = Some(Outcome::Failed(
                    "still running since an earlier report (it overran its time budget then); not started again".into(),
                ));
            } else {
                todo.push_back((i, job.clone()));
            }
        }
        while !todo.is_empty() {
            let (tx, rx) = channel();
            let batch = Arc::new(Batch {
                pending: Mutex::new(std::mem::take(&mut todo)),
                reply: tx,
            });
            let sent = self
                .worker()
                .and_then(|w| w.send(batch.clone()).map_err(|e| e.to_string()));
            if let Err(e) = sent {
                // No worker thread could be started: run them here, still catching panics.
                self.worker = None;
                let rest = std::mem::take(&mut *lock(&batch.pending));
                for (i, job) in rest {
                    let result = run_caught(&job);
                    job.running.store(false, Ordering::Release);
                    out[i] = Some(match result {
                        Ok(text) => Outcome::Ok(text),
                        Err(why) => Outcome::Failed(format!("{why} (worker unavailable: {e})")),
                    });
                }
                break;
            }
            let mut last = Instant::now();
            // The batch's jobs are those without an outcome yet.
            let mut waiting = out.iter().filter(|o| o.is_none()).count();
            while waiting > 0 {
                let left = (last + budget).saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok((i, result)) => {
                        out[i] = Some(match result {
                            Ok(text) => Outcome::Ok(text),
                            Err(why) => Outcome::Failed(why),
                        });
                        last = Instant::now();
                        waiting -= 1;
                    }
                    Err(e) => {
                        // Abandon the worker: it is stuck in a generator.
                        self.worker = None;
                        // Jobs it has not started go to a new worker.
                        todo = std::mem::take(&mut *lock(&batch.pending));
                        // Results that came in meanwhile still count.
                        while let Ok((i, result)) = rx.try_recv() {
                            out[i] = Some(match result {
                                Ok(text) => Outcome::Ok(text),
                                Err(why) => Outcome::Failed(why),
                            });
                        }
                        let why = match e {
                            RecvTimeoutError::Timeout => format!(
                                "timed out: no result within its {} ms budget (still running)",
                                budget.as_millis()
                            ),
                            RecvTimeoutError::Disconnected => "the worker thread died".into(),
                        };
                        let queued: Vec<usize> = todo.iter().map(|(i, _)| *i).collect();
                        for (i, slot) in out.iter_mut().enumerate() {
                            if slot.is_none() && !queued.contains(&i) {
                                *slot = Some(Outcome::Failed(why.clone()));
                            }
                        }
                        break;
                    }
                }
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Failed("not run".into())))
            .collect()
    }

    /// Starts the worker thread now (at install: a report then lists it
    /// among the process's threads from the first one on, as its Process
    /// section counts it).
    pub(crate) fn start(&mut self) -> Result<(), String> {
        self.worker().map(|_| ())
    }

    fn worker(&mut self) -> Result<&Sender<Arc<Batch>>, String> {
        if self.worker.is_none() {
            let (tx, rx) = channel::<Arc<Batch>>();
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

fn worker_loop(rx: Receiver<Arc<Batch>>) {
    // A guru thread answers the capture signal whatever mask it inherited.
    crate::sys::unblock_capture_signal();
    while let Ok(batch) = rx.recv() {
        loop {
            let next = lock(&batch.pending).pop_front();
            let Some((i, job)) = next else { break };
            let result = run_caught(&job);
            job.running.store(false, Ordering::Release);
            let _ = batch.reply.send((i, result));
        }
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

    #[test]
    fn batch_goes_on_after_an_overrun() {
        let (release_tx, release_rx) = channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let slow = Job::new("slow", move || {
            let _ = lock(&release_rx).recv();
            Ok("late".into())
        });
        let first = Job::new("first", || Ok("1".into()));
        let err = Job::new("err", || Err::<&str, _>("nope").into_section());
        let last = Job::new("last", || Ok("3".into()));
        let mut r = Runner::default();
        let jobs = [first.clone(), slow.clone(), err, last];
        let out = r.run_all(&jobs, Duration::from_secs(2));
        assert_eq!(out[0], Outcome::Ok("1".into()));
        assert!(
            matches!(&out[1], Outcome::Failed(why) if why.contains("timed out")),
            "{out:?}"
        );
        assert_eq!(out[2], Outcome::Failed("returned an error: nope".into()));
        assert_eq!(out[3], Outcome::Ok("3".into()));
        // The overrunning one is not started again; the others are.
        let out = r.run_all(&[slow, first], Duration::from_secs(10));
        assert!(
            matches!(&out[0], Outcome::Failed(why) if why.contains("still running")),
            "{out:?}"
        );
        assert_eq!(out[1], Outcome::Ok("1".into()));
        release_tx.send(()).unwrap();
    }
}
