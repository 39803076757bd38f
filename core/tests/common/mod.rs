//! Shared by the model checks in `core/tests/model_*.rs`.

/// Explores `f` with loom (preemption bound 3 unless `LOOM_MAX_PREEMPTIONS`
/// says otherwise) and prints how many executions loom ran.
#[cfg(loom)]
pub fn explore(name: &str, f: fn()) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f();
    });
    println!(
        "loom {name}: {} executions explored",
        runs.load(Ordering::Relaxed)
    );
}
