//! The JSON report: one document per report, schema `guru-report/1`,
//! documented in `docs/json-schema.md`. Sections come in the same order as in
//! the text report; each has `title`, `kind`, `status` (`ok` or `failed`) and
//! either `data` or `error`.

use serde_json::{Value, json};

use crate::report::{Body, Collected, Figures, FrameData, Source, ThreadsData};

/// The schema name and version carried by every document.
pub const SCHEMA: &str = "guru-report/1";

fn utc(ns: u64) -> String {
    let mut s = String::new();
    let _ = guru_core::format::write_utc(&mut s, ns);
    s
}

fn hex(v: u64) -> String {
    format!("0x{v:x}")
}

fn source(s: &Source) -> Value {
    match s {
        Source::Signal(t) => json!({
            "kind": "signal",
            "signal": t.signal,
            "signal_name": guru_core::format::signal_name(t.signal),
            "si_code": t.code,
            "sender_pid": t.sender_pid,
            "sender_uid": t.sender_uid,
            "time": utc(t.unix_ns),
        }),
        Source::File(p) => json!({ "kind": "file", "path": p.display().to_string() }),
        Source::Call => json!({ "kind": "call" }),
        Source::Dump { pid, uid } => {
            json!({ "kind": "dump", "client_pid": pid, "client_uid": uid })
        }
    }
}

/// Renders a whole report as one JSON document (no trailing newline).
pub(crate) fn render(c: &Collected) -> String {
    let sections: Vec<Value> = c
        .sections
        .iter()
        .map(|s| match &s.body {
            Ok(body) => json!({
                "title": s.title, "kind": s.kind, "status": "ok", "data": body_json(body),
            }),
            Err(why) => json!({
                "title": s.title, "kind": s.kind, "status": "failed", "error": why,
            }),
        })
        .collect();
    let doc = json!({
        "schema": SCHEMA,
        "pid": c.pid,
        "sequence": c.sequence,
        "time": utc(c.started_unix_ns),
        "time_unix_ns": c.started_unix_ns,
        "trigger": source(&c.source),
        "sections": sections,
    });
    serde_json::to_string(&doc).unwrap_or_else(|e| {
        // Serializing a Value of strings and numbers cannot fail; be safe anyway.
        json!({ "schema": SCHEMA, "error": e.to_string() }).to_string()
    })
}

/// One frame (the schema's Frame), also used for task traces.
pub(crate) fn frame_json(n: usize, f: &FrameData) -> Value {
    let functions: Vec<Value> = f
        .symbolized
        .functions
        .iter()
        .map(|func| {
            json!({
                "name": func.name.as_deref(), "file": func.file.as_deref(),
                "line": func.line, "inlined": func.inlined,
            })
        })
        .collect();
    json!({
        "index": n,
        "address": hex(f.address),
        "module": f.module.as_ref().map(|m| &m.0),
        "module_offset": f.module.as_ref().map(|m| hex(m.1)),
        "symbol": f.symbolized.symbol.as_ref().map(|s| &*s.0),
        "symbol_offset": f.symbolized.symbol.as_ref().map(|s| hex(s.1)),
        "functions": functions,
    })
}

fn threads_json(t: &ThreadsData) -> Value {
    let threads: Vec<Value> = t
        .threads
        .iter()
        .map(|th| {
            let frames: Vec<Value> = th
                .frames
                .iter()
                .enumerate()
                .map(|(n, f)| frame_json(n, f))
                .collect();
            json!({
                "tid": th.tid,
                "name": th.name,
                "captured": th.unresponsive.is_none(),
                "state": th.state,
                "pause_ns": th.pause_ns,
                "writing_report": th.writing_report,
                "frames": frames,
                "stack_end": th.end.as_deref().map(|e| e.trim().trim_start_matches("-- ")),
                "frames_scanned_from": (th.scanned_from > 0).then_some(th.scanned_from),
                "unresponsive": th.unresponsive.as_deref().map(str::trim),
            })
        })
        .collect();
    json!({ "threads": threads, "left_out": t.left_out, "capacity": t.capacity })
}

/// Output dropped since the last report written whole (`null` when none).
fn output_dropped(d: &guru_core::write::Dropped) -> Value {
    if !d.any() {
        return Value::Null;
    }
    let mut why = String::new();
    let _ = guru_core::write::write_reason(&mut why, d.reason);
    json!({
        "bytes": d.bytes, "reports": d.reports,
        "last_sequence": d.last_sequence, "reason": why,
    })
}

/// `null`, or why the core could not read a `/proc` file this round
/// (`"EMFILE (this process has no file descriptor left)"`).
fn proc_error(errno: i32) -> Value {
    if errno == 0 {
        return Value::Null;
    }
    let mut text = String::new();
    let _ = guru_core::render::write_errno(&mut text, errno);
    Value::String(text)
}

fn figures_json(f: &Figures) -> Value {
    let round = f.round.as_ref().map(|r| {
        json!({
            "sequence": r.sequence,
            "threads_listed": r.threads_listed,
            "threads_captured": r.threads_captured,
            "threads_unresponsive": r.threads_unresponsive,
            "threads_not_signalled": r.threads_not_signalled,
            "threads_left_out": r.threads_left_out,
            "capture_ns": r.capture_ns,
            "fanout_ns": r.fanout_ns,
            "max_pause_ns": r.max_pause_ns,
            "max_pause_tid": r.max_pause_tid,
            "coalesced_triggers": r.coalesced_triggers,
            "mappings_dropped": r.mappings_dropped,
            "output_dropped": output_dropped(&r.output_dropped),
            "thread_list_error": proc_error(r.task_list_errno),
            "maps_error": proc_error(r.maps_errno),
        })
    });
    let recent: Vec<Value> = f
        .recent_triggers
        .iter()
        .map(|t| {
            json!({
                "time": utc(t.unix_ns), "signal": t.signal, "si_code": t.code,
                "sender_pid": t.sender_pid, "sender_uid": t.sender_uid,
                "started_report": t.started_report,
            })
        })
        .collect();
    json!({
        "requested_by": source(&f.source),
        "round": round,
        "capacity": f.capacity,
        "recent_triggers": recent,
        "unresponsive_threads": f.unresponsive_tids,
        "symbolization": {
            "frames": f.symbols.frames,
            "cached": f.symbols.cached,
            "modules_examined_now": f.symbols.modules_loaded,
            "modules_with_debug_info": f.symbols.modules_with_debug_info,
            "ns": f.symbols.ns,
            "cpu_ns": f.symbols.cpu_ns,
            "rss_growth_bytes": f.symbols.rss_growth,
            "no_debug_info": f.no_debug_info,
        },
        "sections_ns": f.sections_ns,
        "total_ns": f.total_ns,
    })
}

fn body_json(body: &Body) -> Value {
    match body {
        Body::Package(p, service) => {
            let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("service".into(), Value::String(service.clone()));
            }
            v
        }
        Body::Threads(t) => threads_json(t),
        Body::Processes(p) => json!({ "processes": p }),
        Body::Configuration(groups) => json!({ "groups": groups }),
        Body::Text(t) => json!({ "text": t }),
        Body::Process(p) => serde_json::to_value(p).unwrap_or(Value::Null),
        Body::Modules(m) => {
            let list: Vec<Value> = m
                .modules
                .iter()
                .map(|m| {
                    json!({
                        "path": String::from_utf8_lossy(&m.path),
                        "start": hex(m.start),
                        "end": hex(m.end),
                        "bias": hex(m.bias),
                        "build_id": (!m.build_id.is_empty()).then(|| {
                            m.build_id.iter().map(|b| format!("{b:02x}")).collect::<String>()
                        }),
                        "symbols": m.symbols.len(),
                    })
                })
                .collect();
            json!({ "modules": list })
        }
        Body::Report(f) => figures_json(f),
        #[cfg(feature = "tokio")]
        Body::GreenThreads(g) => crate::tokio::to_json(g),
    }
}
