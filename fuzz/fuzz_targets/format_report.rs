//! The fixed-capacity formatter: a sequence of arbitrary writes (raw text,
//! escaped bytes, demangled names, banners, timestamps, durations, hex) into a
//! `SliceWriter` of arbitrary size. It must never panic and never overrun; the
//! buffer always holds valid UTF-8; if nothing was cut off the text equals
//! the same writes into an unbounded `String`; if something was, the text is
//! a prefix of that (up to a character boundary) followed by the truncation
//! marker. The escapers must never let a control character through (no line
//! or terminal-escape injection from a hostile thread name or path).
#![no_main]

use std::fmt::Write;

use guru_core::format::{self, SliceWriter, TRUNCATION_MARKER};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u16,
    writes: Vec<Piece>,
}

#[derive(Arbitrary, Debug)]
enum Piece {
    Text(String),
    Escaped(Vec<u8>),
    Demangled(Vec<u8>),
    Banner(String),
    Utc(u64),
    Duration(u64),
    Hex(Vec<u8>),
    Number(u64),
}

fn apply(w: &mut impl Write, p: &Piece) -> std::fmt::Result {
    match p {
        Piece::Text(s) => w.write_str(s),
        Piece::Escaped(b) => format::write_escaped(w, b),
        Piece::Demangled(b) => format::write_demangled(w, b),
        Piece::Banner(t) => format::write_banner(w, t),
        Piece::Utc(ns) => format::write_utc(w, *ns),
        Piece::Duration(ns) => format::write_duration(w, *ns),
        Piece::Hex(b) => format::write_hex_bytes(w, b),
        Piece::Number(n) => write!(w, "  #{n} 0x{n:016x}"),
    }
}

fuzz_target!(|input: Input| {
    let capacity = usize::from(input.capacity % 4096);
    // Guard bytes after the writer's buffer catch any overrun.
    let mut storage = vec![0xa5u8; capacity + 64];
    let (buf, guard) = storage.split_at_mut(capacity);
    let mut w = SliceWriter::new(buf);
    let mut model = String::new();
    for p in input.writes.iter().take(64) {
        assert!(apply(&mut w, p).is_ok(), "a SliceWriter never fails");
        apply(&mut model, p).expect("String never fails");
    }
    let text = w.as_str().to_owned();
    let truncated = w.truncated();
    assert!(
        text.len() <= capacity,
        "overrun: {} > {capacity}",
        text.len()
    );
    assert!(guard.iter().all(|&b| b == 0xa5), "wrote past the buffer");
    if !truncated {
        assert_eq!(text, model);
    } else {
        assert!(model.len() > capacity || text.len() < model.len() || text != model);
        if capacity >= TRUNCATION_MARKER.len() {
            let head = text
                .strip_suffix(TRUNCATION_MARKER)
                .expect("truncation is marked");
            assert!(
                model.starts_with(head),
                "kept text is a prefix of the whole"
            );
        } else {
            assert!(model.starts_with(&text));
        }
    }

    // The escapers' output never contains control characters.
    for p in &input.writes {
        let mut s = String::new();
        match p {
            Piece::Escaped(b) => format::write_escaped(&mut s, b).expect("string"),
            Piece::Demangled(b) => format::write_demangled(&mut s, b).expect("string"),
            _ => continue,
        }
        assert!(!s.chars().any(char::is_control), "control char in {s:?}");
    }
});
