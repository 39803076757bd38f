//! Unit tests of the report model: the checked-in JSON Schema against the
//! types, the model's JSON and text read back into the model, the text
//! renderer's framing guarantees, and `from_text` on arbitrary input.
//! (Over 600 lines: one file of fixtures and tests for the whole model.)

use super::*;
use crate::report::{Notes, ReporterState, Source};

const SCHEMA_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/guru-report.schema.json"
);

/// `docs/guru-report.schema.json` is what the types generate. Regenerate it
/// with `GURU_BLESS=1 cargo test -p guru --lib model::tests::schema`.
#[test]
fn schema_file_matches_the_types() {
    let generated = json_schema();
    if std::env::var_os("GURU_BLESS").is_some() {
        std::fs::write(SCHEMA_FILE, &generated).expect("write the schema file");
        return;
    }
    let on_disk = std::fs::read_to_string(SCHEMA_FILE).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{SCHEMA_FILE} is out of date with guru::model's types: regenerate it with \
         GURU_BLESS=1 cargo test -p guru --lib model::tests::schema"
    );
}

fn func(name: &str, file: &str, line: u32, inlined: bool) -> Function {
    Function {
        name: Some(name.into()),
        file: Some(file.into()),
        line: Some(line),
        inlined,
    }
}

fn frame(index: usize, address: u64, functions: Vec<Function>, symbol: Option<&str>) -> Frame {
    Frame {
        index,
        address: Hex(address),
        module: Some("prog".into()),
        module_offset: Some(Hex(address - 0x1000)),
        symbol: symbol.map(Into::into),
        symbol_offset: symbol.map(|_| Hex(0x24)),
        functions: functions.into(),
    }
}

/// A thread with inlined calls, deep recursion, runtime start-up frames,
/// a frame without a module, a scan note and a truncated stack.
fn sample_thread() -> Thread {
    let mut frames = vec![
        frame(0, 0x5000, vec![], Some("read")),
        frame(
            1,
            0x5100,
            vec![
                func("prog::inner", "src/a.rs", 4, true),
                func("prog::outer", "src/a.rs", 9, false),
            ],
            Some("prog::outer"),
        ),
    ];
    for i in 2..11 {
        frames.push(frame(
            i,
            0x5200,
            vec![func("prog::recurse", "src/r.rs", 3, false)],
            None,
        ));
    }
    frames.push(Frame {
        index: 11,
        address: Hex(0x77),
        module: None,
        module_offset: None,
        symbol: None,
        symbol_offset: None,
        functions: std::sync::Arc::from([]),
    });
    frames.push(frame(12, 0x5300, vec![], None));
    frames.push(frame(
        13,
        0x5400,
        vec![func(
            "std::sys::backtrace::__rust_begin_short_backtrace",
            "std/x.rs",
            1,
            false,
        )],
        None,
    ));
    frames.push(frame(14, 0x5500, vec![], Some("start_thread")));
    Thread {
        tid: 42,
        name: "work\\x0a".into(),
        captured: true,
        state: "in syscall read".into(),
        pause_ns: 12_345,
        writing_report: false,
        frames,
        stack_end: Some("stack truncated: frame limit reached".into()),
        frames_scanned_from: Some(12),
        unresponsive: None,
        elided: vec![],
        cpu_ns: None,
        stack_hash: None,
        same_stack: None,
        stalled: false,
        mark: None,
        context: Some(sample_context()),
    }
}

/// Labels (one awkward), spans with fields, breadcrumbs with drops.
fn sample_context() -> ThreadContext {
    let label = |key: &str, value: &str| Label {
        key: key.into(),
        value: value.into(),
    };
    ThreadContext {
        being_updated: false,
        labels: vec![
            label("request", "GET /users/42"),
            label("a key", "say \"hi\"\n"),
        ],
        labels_not_kept: 1,
        spans: vec![
            Span {
                name: "http_request".into(),
                fields: vec![label("method", "GET"), label("path", "/users/42")],
            },
            Span {
                name: "db_query".into(),
                fields: vec![label("sql", "select 1 | 2")],
            },
        ],
        spans_not_kept: 0,
        breadcrumbs: vec![
            Breadcrumb {
                age_ns: 1_204_000_000,
                text: "accepted conn 17".into(),
            },
            Breadcrumb {
                age_ns: 0,
                text: "a | b".into(),
            },
        ],
        breadcrumbs_dropped: 3,
    }
}

fn unresponsive_thread() -> Thread {
    let block = "------ Thread 43 \"stuck\" (unresponsive after 100 ms: state S, sleeping, in syscall futex; the capture signal may be blocked) ------\n  -- not captured";
    Thread {
        tid: 43,
        name: "stuck".into(),
        captured: false,
        state: "not captured".into(),
        pause_ns: 0,
        writing_report: false,
        frames: vec![],
        stack_end: None,
        frames_scanned_from: None,
        unresponsive: Some(block.into()),
        elided: vec![],
        cpu_ns: None,
        stack_hash: None,
        same_stack: None,
        stalled: false,
        mark: None,
        context: None,
    }
}

/// The thread that wrote the report, as the std adapter names it.
fn writer_thread() -> Thread {
    Thread {
        tid: 44,
        name: "guru-reporter".into(),
        captured: true,
        state: "the reporter, writing this report".into(),
        pause_ns: 3_000,
        writing_report: true,
        frames: vec![frame(0, 0x6000, vec![], Some("poll"))],
        stack_end: None,
        frames_scanned_from: None,
        unresponsive: None,
        elided: vec![],
        cpu_ns: None,
        stack_hash: None,
        same_stack: None,
        stalled: false,
        mark: None,
        context: None,
    }
}

fn section(title: &str, data: Data) -> Section {
    Section {
        title: title.into(),
        content: Content::Ok(data),
    }
}

/// A report with everything the std adapter can show that does not need
/// an installed engine, and every note of the Report section.
fn collected() -> Report {
    let mut r = crate::report::collect(
        &mut ReporterState::default(),
        None,
        Source::Call,
        Notes::default(),
    )
    .report;
    r.sequence = 3;
    r.pid = 4242;
    let time = r.time.clone();
    r.trigger = Trigger::Signal {
        signal: libc::SIGUSR2,
        signal_name: Some("SIGUSR2".into()),
        si_code: 0,
        sender_pid: 7,
        sender_uid: 1000,
        time: time.clone(),
    };
    r.sections[1] = section(
        "Threads",
        Data::Threads(Threads {
            threads: vec![sample_thread(), unresponsive_thread(), writer_thread()],
            left_out: 2,
            capacity: 3,
        }),
    );
    r.sections.insert(
        2,
        Section {
            title: "Slow \u{1b}[31m".into(),
            content: Content::Failed {
                kind: Kind::Custom,
                error: "timed out: no result\nwithin 5 ms".into(),
            },
        },
    );
    r.sections.insert(
        3,
        section(
            "Queue",
            Data::Custom(Custom {
                text: "depth: 3\r\n\n  busy\u{7}: 1\n".into(),
            }),
        ),
    );
    let trigger = r.trigger.clone();
    if let Some(Section {
        content: Content::Ok(Data::Report(f)),
        ..
    }) = r.sections.last_mut()
    {
        f.requested_by = Some(trigger);
        f.round = Some(Round {
            sequence: 3,
            threads_listed: 3,
            threads_captured: 2,
            threads_unresponsive: 1,
            capture_ns: 3_057_000,
            output_dropped: Some(OutputDropped {
                bytes: 61_440,
                reports: 2,
                last_sequence: 2,
                reason: "the reader of the output is gone (EPIPE)".into(),
            }),
            thread_list_error: Some("EMFILE (this process has no file descriptor left)".into()),
            thread_list_writer_shown: true,
            maps_error: Some("EACCES (permission denied)".into()),
            mappings_dropped: 4,
            ..Default::default()
        });
        f.capacity = 3;
        f.unresponsive_threads = vec![43];
        if let Some(s) = &mut f.symbolization {
            s.no_debug_info = vec!["libc.so.6: no DWARF line tables".into()];
        }
        f.recent_triggers = vec![
            RecentTrigger {
                time: time.clone(),
                signal: libc::SIGUSR2,
                si_code: 0,
                sender_pid: 7,
                sender_uid: 1000,
                started_report: true,
            },
            RecentTrigger {
                time,
                signal: libc::SIGUSR2,
                si_code: 0,
                sender_pid: 7,
                sender_uid: 1000,
                started_report: false,
            },
        ];
        f.trigger_settings = Some(TriggerSettings {
            signal: Some(libc::SIGUSR2),
            min_interval_ns: 1_500_000_000,
        });
        f.ignored_file_touches = Some(IgnoredTouches {
            count: 2,
            owner_uid: Some(1001),
        });
        f.blocking_capture = Some(BlockingCapture {
            signal: 40,
            rtmin_offset: 6,
            blocked_at_install: true,
            tids: vec![43],
        });
    }
    r
}

/// The model's JSON reads back into the same model, and its text reads back
/// into a model that renders the same text — for a report without an
/// engine and for one with every kind of line the Report section has.
#[test]
fn model_round_trips_through_json_and_text() {
    for model in [
        crate::report::collect(
            &mut ReporterState::default(),
            None,
            Source::Call,
            Notes::default(),
        )
        .report,
        collected(),
    ] {
        let json = model.to_json();
        assert_eq!(Report::from_json(&json).expect("from_json"), model);
        let text = model.to_text();
        let parsed = Report::from_text(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(parsed.to_text(), text);
        assert_eq!(parsed.pid, model.pid);
        assert_eq!(parsed.sections.len(), model.sections.len());
        let Some(Content::Ok(Data::Report(f))) = parsed.section("Report").map(|s| &s.content)
        else {
            panic!("no Report section");
        };
        let Some(Content::Ok(Data::Report(g))) = model.section("Report").map(|s| &s.content) else {
            panic!("no Report section");
        };
        assert_eq!(
            f.round.as_ref().map(|r| &r.output_dropped),
            g.round.as_ref().map(|r| &r.output_dropped)
        );
        assert_eq!(f.ignored_file_touches, g.ignored_file_touches);
        assert_eq!(f.blocking_capture, g.blocking_capture);
        assert_eq!(f.trigger_settings, g.trigger_settings);
    }
}

/// The text of the sample shows each note once, in the renderer's words.
#[test]
fn report_section_notes_are_in_the_text() {
    let text = collected().to_text();
    for line in [
        "  thread list incomplete: cannot list /proc/self/task: EMFILE (this process has no file descriptor left); shown: the thread writing this report\n",
        "  output dropped: 61440 bytes of 2 reports not written (last #2: the reader of the output is gone (EPIPE))\n",
        "  readable mappings unknown: cannot read /proc/self/maps: EACCES (permission denied); stacks were probed with process_vm_readv\n",
        "  note: SIGUSR2 is a standard signal",
        "  rate limit: reports at least 1.500 s apart; sooner triggers are held and coalesced into one report\n",
        "  file trigger: 2 touches ignored since the last report (the file is owned by uid 1001, not by this process's user or root)\n",
        "  recent triggers, by time (oldest first):\n",
        "  threads blocking the capture signal SIGRTMIN+6 (signal 40): 43; the thread that installed guru blocked it too",
        "------ Thread 44 \"guru-reporter\" (the reporter, writing this report; paused ",
        "  uptime: ",
    ] {
        assert_eq!(text.matches(line).count(), 1, "{line:?} once in:\n{text}");
    }
    assert!(text.contains("(guru not installed)\n"), "{text}");
}

#[test]
fn text_model_says_what_was_folded() {
    let text = collected().to_text();
    let model = Report::from_text(&text).expect("parse");
    let Some(Content::Ok(Data::Threads(t))) = model.section("Threads").map(|s| &s.content) else {
        panic!("no threads");
    };
    let th = &t.threads[0];
    assert_eq!(
        th.elided,
        [
            Elided {
                first: 5,
                last: 10,
                why: ElidedWhy::Recursion
            },
            Elided {
                first: 13,
                last: 14,
                why: ElidedWhy::RuntimeStartUp
            },
        ]
    );
    assert_eq!(
        th.frames.iter().map(|f| f.index).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 11, 12]
    );
    assert_eq!(th.frames_scanned_from, Some(12));
    assert_eq!(
        th.stack_end.as_deref(),
        Some("stack truncated: frame limit reached")
    );
    assert_eq!(th.pause_ns, 12_000, "at text precision");
    assert!(!t.threads[1].captured);
    assert_eq!((t.left_out, t.capacity), (2, 3));
    let Some(Content::Failed { error, kind }) =
        // The text escapes the title.
        model.section("Slow \\x1b[31m").map(|s| &s.content)
    else {
        panic!("no failed section: {:?}", model.sections);
    };
    assert_eq!(*kind, Kind::Custom);
    assert_eq!(
        error, "timed out: no result\\x0awithin 5 ms",
        "escaped as in the text"
    );
}

#[test]
fn parse_errors_say_where_and_what() {
    let e = Report::from_text("hello\n").expect_err("not a report");
    assert_eq!(e.line, 1);
    assert!(matches!(e.kind, ParseErrorKind::Expected { .. }), "{e:?}");
    assert!(e.to_string().contains("the begin line"), "{e}");

    let text = collected().to_text();
    let cut: String = text.lines().take(20).map(|l| format!("{l}\n")).collect();
    let e = Report::from_text(&cut).expect_err("cut short");
    assert!(matches!(e.kind, ParseErrorKind::Truncated { .. }), "{e:?}");

    let bad = text.replacen("  #1 0x", "  #1 0xZZ", 1);
    let e = Report::from_text(&bad).expect_err("bad frame");
    let line = bad.lines().position(|l| l.contains("0xZZ")).expect("line") + 1;
    assert_eq!(e.line, line, "{e}");
}

/// A small xorshift generator: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// `from_text` never panics: real report text with lines dropped,
/// duplicated, cut, spliced and bytes changed, and random text; whatever
/// parses renders without panicking too.
#[test]
fn from_text_never_panics_on_mutated_input() {
    let base = collected().to_text();
    let lines: Vec<&str> = base.lines().collect();
    let alphabet: Vec<char> = " #.:0123456789abcdefx-=()[]\"\n;µ+/".chars().collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut parsed = 0;
    for round in 0..3000 {
        let mut l: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(l.len());
            match rng.below(7) {
                0 => {
                    l.remove(i);
                }
                1 => {
                    let dup = l[i].clone();
                    l.insert(i, dup);
                }
                2 => {
                    let cut = rng.below(l[i].len() + 1);
                    let keep: String = l[i].chars().take(cut).collect();
                    l[i] = keep;
                }
                3 => {
                    let j = rng.below(l.len());
                    l.swap(i, j);
                }
                4 => {
                    let c = alphabet[rng.below(alphabet.len())];
                    let at = rng.below(l[i].chars().count() + 1);
                    let mut s: String = l[i].chars().take(at).collect();
                    s.push(c);
                    s.extend(l[i].chars().skip(at + 1));
                    l[i] = s;
                }
                5 => {
                    let digits = rng.next().to_string();
                    l[i] = l[i].replace(|c: char| c.is_ascii_digit(), &digits[..1]);
                }
                _ => {
                    l[i] = (0..rng.below(40))
                        .map(|_| alphabet[rng.below(alphabet.len())])
                        .collect();
                }
            }
        }
        let mut text = l.join("\n");
        if round % 5 != 0 {
            text.push('\n');
        }
        if let Ok(r) = Report::from_text(&text) {
            parsed += 1;
            let _ = r.to_text();
        }
    }
    for _ in 0..2000 {
        let s: String = (0..rng.below(200))
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        let _ = Report::from_text(&s);
        let _ = Report::from_text(&format!("==== Guru Meditation ==== pid 1 report #1 at {s}"));
    }
    assert!(
        parsed > 0,
        "some mutations (e.g. a changed digit) still parse"
    );
}

fn model_frame(index: usize, address: u64, name: Option<&str>) -> Frame {
    Frame {
        index,
        address: Hex(address),
        module: Some("prog".into()),
        module_offset: Some(Hex(address - 0x1000)),
        symbol: Some("sym".into()),
        symbol_offset: Some(Hex(0x10)),
        functions: name
            .map(|n| {
                vec![
                    Function {
                        name: Some(format!("{n}::{{closure}}").into()),
                        file: Some("src/t.rs".into()),
                        line: Some(7),
                        inlined: true,
                    },
                    Function {
                        name: Some(n.into()),
                        file: None,
                        line: None,
                        inlined: false,
                    },
                ]
            })
            .unwrap_or_default()
            .into(),
    }
}

fn runtime(name: &str, task_dump: TaskDump, unstable: bool) -> Runtime {
    Runtime {
        name: name.into(),
        flavor: "multi_thread".into(),
        workers: 2,
        alive_tasks: 1,
        global_queue_depth: 0,
        worker_figures: (0..2)
            .map(|i| WorkerFigures {
                index: i,
                parked: Some(i == 0),
                busy_ns: Some(1_234_000_000 * i as u64),
                park_count: Some(12),
                park_unpark_count: Some(25),
                poll_count: unstable.then_some(99_999_999_999),
                local_queue_depth: unstable.then_some(3),
                steal_count: unstable.then_some(0),
                mean_poll_ns: unstable.then_some(12_300),
            })
            .collect(),
        unstable: unstable.then_some(UnstableFigures {
            blocking_threads: 1,
            idle_blocking_threads: 1,
            blocking_queue_depth: 0,
            spawned_tasks: Some(5),
            remote_schedules: None,
            budget_forced_yields: Some(0),
        }),
        read_after_capture_ns: unstable.then_some(2_500_000),
        task_dump,
        stalled_workers: Vec::new(),
    }
}

/// Green Threads in every task dump outcome render to text that reads back
/// into the same model (durations chosen at text precision).
#[test]
fn green_threads_round_trip_through_text() {
    let taken = TaskDump::Taken {
        tasks: 1004,
        left_out: 4,
        dump_ns: 1_500_000,
        resolve_ns: 12_300_000,
        groups: vec![
            TaskGroup {
                task_ids: vec!["1".into(), "3".into()],
                traces: vec![
                    vec![
                        model_frame(0, 0x2000, Some("leaf")),
                        model_frame(1, 0x2100, None),
                    ],
                    vec![model_frame(0, 0x2200, Some("other"))],
                ],
                root_call_found: vec![true, false],
            },
            TaskGroup {
                task_ids: vec!["2".into()],
                traces: vec![],
                root_call_found: vec![],
            },
            TaskGroup {
                task_ids: vec!["7".into()],
                traces: vec![vec![model_frame(0, 0x2300, Some("only"))]],
                root_call_found: vec![false],
            },
        ],
    };
    let runtimes = vec![
        runtime("api \"v1\"", taken, true),
        runtime(
            "side",
            TaskDump::NotTaken {
                reason: "not built in: build with --cfg tokio_unstable".into(),
            },
            false,
        ),
        runtime(
            "wedge",
            TaskDump::Blocked {
                reason: "no task dump requested: worker 1 has not been back".into(),
            },
            false,
        ),
        runtime(
            "stalled",
            TaskDump::TimedOut {
                timeout_ms: 1000,
                reason: "the dump was cancelled".into(),
            },
            false,
        ),
        runtime(
            "late",
            TaskDump::Failed {
                reason: "the dump requested by an earlier report has not ended".into(),
            },
            true,
        ),
        runtime(
            "one",
            TaskDump::Taken {
                tasks: 1,
                left_out: 0,
                dump_ns: 2_000,
                resolve_ns: 3_000,
                groups: vec![TaskGroup {
                    task_ids: vec!["5".into()],
                    traces: vec![vec![model_frame(0, 0x2400, Some("single"))]],
                    root_call_found: vec![true],
                }],
            },
            false,
        ),
    ];
    let report = Report {
        schema: SCHEMA.into(),
        pid: 9,
        sequence: 2,
        time: "2026-11-30T00:42:53.630Z".into(),
        time_unix_ns: 1_795_999_373_630_000_000,
        trigger: Trigger::Call,
        sections: vec![Section {
            title: "Green Threads".into(),
            content: Content::Ok(Data::GreenThreads(GreenThreads { runtimes })),
        }],
        read_from_text: false,
    };
    let text = report.to_text();
    assert!(
        text.contains("------ Tasks 1, 3 (2 tasks) of runtime \"api \"v1\"\" ------"),
        "{text}"
    );
    assert!(text.contains("  -- waiting on leaf 2 of 2:"), "{text}");
    // One task, one trace: singular (issue 11: not "1 tasks").
    assert!(
        text.contains("  task traces: 1 task, 1 distinct trace; the dump took "),
        "{text}"
    );
    assert!(
        text.contains("  task traces: 1004 tasks, 3 distinct traces;"),
        "{text}"
    );
    assert!(
        text.contains("  (#0: the call in the task's root future"),
        "{text}"
    );
    let parsed = Report::from_text(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(parsed.to_text(), text);
    // What the text carries comes back as it was (symbols of frames with
    // DWARF functions are not in the text).
    let mut expected = report.clone();
    expected.read_from_text = true;
    if let Content::Ok(Data::GreenThreads(g)) = &mut expected.sections[0].content {
        for r in &mut g.runtimes {
            if let TaskDump::Taken { groups, .. } = &mut r.task_dump {
                for f in groups
                    .iter_mut()
                    .flat_map(|g| g.traces.iter_mut().flatten())
                {
                    if !f.functions.is_empty() {
                        (f.symbol, f.symbol_offset) = (None, None);
                    }
                }
            }
        }
    }
    assert_eq!(parsed, expected);
}

fn crash_trigger(si_code: i32, address: Option<u64>, then_signal: Option<i32>) -> Trigger {
    let signal = libc::SIGSEGV;
    Trigger::Crash {
        signal,
        signal_name: Some("SIGSEGV".into()),
        si_code,
        si_code_name: guru_core::crash::code_name(signal, si_code).map(str::to_string),
        fault_address: address.map(Hex),
        sender_pid: address.is_none().then_some(4242),
        thread: 45,
        thread_name: "crash\\x0aer".into(),
        then_signal,
        then_signal_name: then_signal
            .and_then(guru_core::format::signal_name)
            .map(str::to_string),
        time: "2026-11-30T00:42:53.630Z".into(),
    }
}

/// The crashed thread (its mark in the header) followed by the sample.
fn crash_threads(trigger: &Trigger) -> Data {
    let Trigger::Crash {
        signal,
        signal_name,
        si_code,
        si_code_name,
        fault_address,
        ..
    } = trigger.clone()
    else {
        unreachable!()
    };
    let mut crashed = writer_thread();
    crashed.tid = 45;
    crashed.name = "crash\\x0aer".into();
    crashed.state = "crashed".into();
    crashed.pause_ns = 0;
    crashed.writing_report = false;
    crashed.mark = Some(ThreadMark::Crashed {
        signal,
        signal_name,
        si_code,
        si_code_name,
        fault_address,
    });
    Data::Threads(Threads {
        threads: vec![crashed, sample_thread(), writer_thread()],
        left_out: 0,
        capacity: 3,
    })
}

/// Text → model → text is the same, and JSON → model is the same model.
fn assert_round_trips(model: &Report) -> Report {
    assert_eq!(
        Report::from_json(&model.to_json()).expect("from_json"),
        *model
    );
    let text = model.to_text();
    let parsed = Report::from_text(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(parsed.to_text(), text);
    parsed
}

/// Crash reports of the std adapter (a fault, a fault then SIGABRT, an
/// abort from pid, a code without a name) and panic reports read back
/// from text and JSON; the marks and triggers come back as they were.
#[test]
fn crash_and_panic_reports_round_trip() {
    let crashes = [
        crash_trigger(1, Some(0), None),
        crash_trigger(2, Some(0x7f48_d89f_d9e8), Some(libc::SIGABRT)),
        crash_trigger(-6, None, None),
        crash_trigger(99, Some(0x10), Some(40)),
    ];
    for trigger in crashes {
        let mut r = collected();
        r.trigger = trigger.clone();
        let mut threads = crash_threads(&trigger);
        // The std adapter's crashed thread has its CPU clock (the crash
        // helper reads it) and is compared with the previous report like
        // any other: both lines must read back under the crash header.
        if let Data::Threads(t) = &mut threads {
            t.threads[0].cpu_ns = Some(1_234_000_000);
            t.threads[0].same_stack = Some(SameStack {
                as_report: 2,
                ago_ns: 3_100_000_000,
                cpu_delta_ns: Some(0),
            });
        }
        r.sections[1] = section("Threads", threads);
        if let Some(Content::Ok(Data::Report(f))) = r.sections.last_mut().map(|s| &mut s.content) {
            f.requested_by = Some(trigger.clone());
        }
        let parsed = assert_round_trips(&r);
        let text = r.to_text();
        assert!(
            text.contains("  after this report the process dies"),
            "{text}"
        );
        assert!(
            text.contains("; cpu 1.234 s) ------\n  same stack as report #2"),
            "{text}"
        );
        // The text carries the whole crash but its time (the report's).
        let mut expected = trigger.clone();
        if let Trigger::Crash { time, .. } = &mut expected {
            time.clone_from(&r.time);
        }
        assert_eq!(parsed.trigger, expected, "{text}");
        let Some(Content::Ok(Data::Threads(t))) = parsed.section("Threads").map(|s| &s.content)
        else {
            panic!("no threads")
        };
        let Some(Content::Ok(Data::Threads(original))) = r.section("Threads").map(|s| &s.content)
        else {
            panic!("no threads")
        };
        assert_eq!(t.threads[0].mark, original.threads[0].mark, "{text}");
        assert_eq!(t.threads[0].state, "crashed");
        assert_eq!(t.threads[0].cpu_ns, Some(1_234_000_000));
        assert_eq!(t.threads[0].same_stack, original.threads[0].same_stack);
    }
    let line = |t: &Trigger| {
        let mut r = collected();
        r.trigger = t.clone();
        r.to_text().lines().next().unwrap_or_default().to_string()
    };
    let begin = line(&crash_trigger(99, Some(0x10), Some(40)));
    assert!(
        begin.ends_with(
            "triggered by a crash: SIGSEGV (si_code 99) at address 0x10 in thread 45 \"crash\\x0aer\", then signal 40"
        ),
        "{begin}"
    );

    for (message, location) in [("fixture panic 7", "src/main.rs:3:5"), ("two\nlines", "")] {
        let trigger = Trigger::Panic {
            message: message.into(),
            location: location.into(),
            thread: 44,
            thread_name: "guru-reporter".into(),
            unreported_panics_before: 9,
            min_interval_ms: 1500,
        };
        let mut r = collected();
        r.trigger = trigger.clone();
        if let Content::Ok(Data::Threads(t)) = &mut r.sections[1].content {
            let mut w = t.threads.remove(2);
            w.state = "panicking, writing this report".into();
            w.mark = Some(ThreadMark::Panicking);
            t.threads.insert(0, w);
        }
        if let Some(Content::Ok(Data::Report(f))) = r.sections.last_mut().map(|s| &mut s.content) {
            f.requested_by = Some(trigger.clone());
        }
        let parsed = assert_round_trips(&r);
        let text = r.to_text();
        assert!(
            text.contains("  panics not reported since the last panic report (rate limit: one per 1.500 s): 9\n"),
            "{text}"
        );
        // The begin line names the thread; the rest comes from the Report
        // section (the message as the text escapes it).
        let Trigger::Panic {
            message: m,
            location: l,
            ..
        } = &parsed.trigger
        else {
            panic!("{:?}", parsed.trigger)
        };
        assert_eq!(
            (m.replace("\\x0a", "\n"), l.as_str()),
            (message.into(), location)
        );
        let Some(Content::Ok(Data::Threads(t))) = parsed.section("Threads").map(|s| &s.content)
        else {
            panic!("no threads")
        };
        assert_eq!(t.threads[0].mark, Some(ThreadMark::Panicking));
    }
}

/// A core crash report (Threads, Modules, Report without `requested by`,
/// the `crash: … at <time>` line) reads back with the crash's own time;
/// a `crash:` line naming another crash than the begin line is rejected.
#[test]
fn core_crash_report_round_trips() {
    let trigger = crash_trigger(1, Some(0), None);
    let mut not_unwound = writer_thread();
    not_unwound.frames.truncate(1);
    not_unwound.stack_end =
        Some("not unwound: the round did not capture the crashed thread".into());
    let r = Report {
        schema: SCHEMA.into(),
        pid: 4242,
        sequence: 1,
        time: "2026-11-30T00:42:54.000Z".into(),
        time_unix_ns: 1_795_999_374_000_000_000,
        trigger: trigger.clone(),
        sections: vec![
            section("Threads", crash_threads(&trigger)),
            section(
                "Report",
                Data::Report(Box::new(Figures {
                    requested_by: None,
                    round: Some(Round {
                        sequence: 1,
                        threads_listed: 3,
                        threads_captured: 3,
                        ..Default::default()
                    }),
                    capacity: 3,
                    recent_triggers: vec![RecentTrigger {
                        time: "2026-11-30T00:42:53.630Z".into(),
                        signal: libc::SIGSEGV,
                        si_code: 1,
                        sender_pid: 0,
                        sender_uid: 0,
                        started_report: true,
                    }],
                    unresponsive_threads: vec![],
                    symbolization: None,
                    sections_ns: None,
                    total_ns: None,
                    trigger_settings: None,
                    ignored_file_touches: None,
                    blocking_capture: None,
                    watchdog: None,
                })),
            ),
        ],
        read_from_text: false,
    };
    let text = r.to_text();
    for line in [
        "  crash: SIGSEGV (SEGV_MAPERR) at address 0x0 in thread 45 \"crash\\x0aer\" at 2026-11-30T00:42:53.630Z\n",
        "  trigger at 2026-11-30T00:42:53.630Z: SIGSEGV (SEGV_MAPERR)\n",
        "------ Thread 45 \"crash\\x0aer\" (crashed: SIGSEGV SEGV_MAPERR at address 0x0) ------\n",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    let parsed = assert_round_trips(&r);
    assert_eq!(parsed.trigger, trigger, "the crash's time is read");
    let other = text.replacen(
        "  crash: SIGSEGV (SEGV_MAPERR) at address 0x0 in thread 45",
        "  crash: SIGSEGV (SEGV_MAPERR) at address 0x0 in thread 46",
        1,
    );
    let e = Report::from_text(&other).expect_err("another crash");
    assert!(e.to_string().contains("the crash of the begin line"), "{e}");
}
