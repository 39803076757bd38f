//! Reading a thread's context lines back (`  labels: …`, `  spans: …`,
//! `  breadcrumbs …: …`, or the "being updated" line), in the form
//! `guru_core::context::write_context_parts` writes them: bare words or
//! quoted strings (`\"`, `\\`, `\xNN`, `\u{2028}` undone). Each line read is
//! rendered again and must come out the same, so a line this reader
//! accepts always round-trips.

use guru_core::context::BEING_UPDATED_LINE;

use super::super::text::write_context;
use super::super::{Breadcrumb, Label, Span, ThreadContext};
use super::words::num;
use super::{Lines, Result};

/// The context lines under a thread's header, if any.
pub(super) fn context(l: &mut Lines<'_>) -> Result<Option<ThreadContext>> {
    let start = l.pos;
    let mut c = ThreadContext::default();
    if l.take(BEING_UPDATED_LINE).is_some_and(str::is_empty) {
        c.being_updated = true;
    } else {
        l.pos = start;
        if let Some(rest) = l.take("  labels:") {
            labels(rest, &mut c).ok_or_else(|| l.err("  labels: <key>=\"<value>\" …"))?;
        }
        if let Some(rest) = l.take("  spans: ") {
            spans(rest, &mut c).ok_or_else(|| l.err("  spans: <name>{<field>=<value> …} > …"))?;
        }
        if let Some(rest) = l.take("  breadcrumbs (oldest first") {
            breadcrumbs(rest, &mut c)
                .ok_or_else(|| l.err("  breadcrumbs (oldest first…): -<s>.<ms> s <text> | …"))?;
        }
    }
    if l.pos == start {
        return Ok(None);
    }
    // What was read renders back to the same lines, or it is not read.
    let mut back = String::new();
    write_context(&mut back, &c);
    let read = l.lines.get(start..l.pos).unwrap_or_default();
    if back.lines().ne(read.iter().copied()) {
        return Err(l.err("context lines as guru writes them (bare words or quoted strings)"));
    }
    Ok(Some(c))
}

/// A cursor over one line.
struct Cur<'a>(&'a str);

impl<'a> Cur<'a> {
    fn eat(&mut self, prefix: &str) -> bool {
        match self.0.strip_prefix(prefix) {
            Some(rest) => {
                self.0 = rest;
                true
            }
            None => false,
        }
    }

    fn done(&self) -> bool {
        self.0.is_empty()
    }

    /// A quoted string (the cursor is at its `"`), unescaped.
    fn quoted(&mut self) -> Option<String> {
        let mut rest = self.0.strip_prefix('"')?;
        let mut out = String::new();
        loop {
            let i = rest.find(['"', '\\'])?;
            out.push_str(rest.get(..i)?);
            let tail = rest.get(i..)?;
            if let Some(after) = tail.strip_prefix('"') {
                self.0 = after;
                return Some(out);
            }
            let escape = tail.get(1..)?;
            rest = if let Some(after) = escape.strip_prefix(['"', '\\']) {
                out.push_str(escape.get(..1)?);
                after
            } else if let Some(after) = escape.strip_prefix("u{2028}") {
                out.push('\u{2028}');
                after
            } else if let Some(after) = escape.strip_prefix("u{2029}") {
                out.push('\u{2029}');
                after
            } else {
                // `\xNN`: a control character's code point.
                let after = escape.strip_prefix('x')?;
                let digits = after
                    .get(..2)
                    .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))?;
                let code = u32::from_str_radix(digits, 16).ok()?;
                out.push(char::from_u32(code).filter(|c| c.is_control())?);
                after.get(2..)?
            };
        }
    }

    /// A quoted string, or a bare word up to (not including) the first
    /// char `stop` accepts; not empty.
    fn text(&mut self, stop: impl Fn(char) -> bool) -> Option<String> {
        if self.0.starts_with('"') {
            return self.quoted();
        }
        let end = self.0.find(stop).unwrap_or(self.0.len());
        let (word, rest) = self.0.split_at(end);
        self.0 = rest;
        (!word.is_empty()).then(|| word.to_string())
    }

    /// `(+N not kept)` ending the line.
    fn not_kept(&mut self) -> Option<u64> {
        let n = num(self.0.strip_prefix("(+")?.strip_suffix(" not kept)")?)?;
        self.0 = "";
        Some(n)
    }
}

/// After `  labels:`: ` key="value"` … [` (+N not kept)`].
fn labels(rest: &str, c: &mut ThreadContext) -> Option<()> {
    let mut cur = Cur(rest);
    while !cur.done() {
        if !cur.eat(" ") {
            return None;
        }
        if let Some(n) = cur.not_kept() {
            c.labels_not_kept = n;
            break;
        }
        let key = cur.text(|ch| ch == '=')?;
        if !cur.eat("=") || !cur.0.starts_with('"') {
            return None;
        }
        let value = cur.quoted()?;
        c.labels.push(Label { key, value });
    }
    (!c.labels.is_empty() || c.labels_not_kept > 0).then_some(())
}

/// After `  spans: `: `name{k=v …}` joined by ` > `, [`(+N not kept)`].
fn spans(rest: &str, c: &mut ThreadContext) -> Option<()> {
    let mut cur = Cur(rest);
    loop {
        if let Some(n) = cur.not_kept() {
            c.spans_not_kept = n;
            return Some(());
        }
        let name = cur.text(|ch| ch == '{' || ch == ' ')?;
        let mut fields = Vec::new();
        if cur.eat("{") {
            loop {
                let key = cur.text(|ch| ch == '=')?;
                if !cur.eat("=") {
                    return None;
                }
                let value = cur.text(|ch| ch == '}' || ch.is_whitespace())?;
                fields.push(Label { key, value });
                if cur.eat("}") {
                    break;
                }
                if !cur.eat(" ") {
                    return None;
                }
            }
        }
        c.spans.push(Span { name, fields });
        if cur.done() {
            return Some(());
        }
        if !cur.eat(" > ") {
            return None;
        }
    }
}

/// After `  breadcrumbs (oldest first`: `[, N older dropped]):` then
/// ` -S.mmm s text` joined by ` |`.
fn breadcrumbs(rest: &str, c: &mut ThreadContext) -> Option<()> {
    let mut cur = Cur(rest);
    if cur.eat(", ") {
        let (n, after) = cur.0.split_once(" older dropped")?;
        c.breadcrumbs_dropped = num(n)?;
        cur.0 = after;
    }
    if !cur.eat("):") {
        return None;
    }
    while !cur.done() {
        if !cur.eat(if c.breadcrumbs.is_empty() { " " } else { " | " }) || !cur.eat("-") {
            return None;
        }
        let (secs, after) = cur.0.split_once('.')?;
        let secs: u64 = num(secs)?;
        let ms = after
            .get(..3)
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))?;
        let ms: u64 = ms.parse().ok()?;
        cur.0 = after.get(3..)?;
        if !cur.eat(" s ") {
            return None;
        }
        let text = if cur.0.starts_with('"') {
            cur.quoted()?
        } else {
            let end = cur.0.find(" | ").unwrap_or(cur.0.len());
            let (word, after) = cur.0.split_at(end);
            cur.0 = after;
            word.to_string()
        };
        let age_ns = secs
            .checked_mul(1000)?
            .checked_add(ms)?
            .checked_mul(1_000_000)?;
        c.breadcrumbs.push(Breadcrumb { age_ns, text });
    }
    (!c.breadcrumbs.is_empty() || c.breadcrumbs_dropped > 0).then_some(())
}

#[cfg(test)]
mod tests {
    use super::super::super::text::write_context;
    use super::super::super::{Breadcrumb, Label, Span, ThreadContext};
    use super::super::Lines;
    use super::context;

    fn label(key: &str, value: &str) -> Label {
        Label {
            key: key.into(),
            value: value.into(),
        }
    }

    fn read(text: &str) -> Option<ThreadContext> {
        let lines: Vec<&str> = text.lines().collect();
        let mut l = Lines::new(&lines, 1);
        let c = context(&mut l).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(l.done(), "not all read: {text}");
        c
    }

    fn round_trip(c: &ThreadContext) -> String {
        let mut text = String::new();
        write_context(&mut text, c);
        assert_eq!(read(&text).as_ref(), Some(c), "{text}");
        text
    }

    #[test]
    fn plain_context_reads_as_the_issue_shows_it() {
        let c = ThreadContext {
            labels: vec![label("request", "GET /users/42"), label("tenant", "acme")],
            spans: vec![
                Span {
                    name: "http_request".into(),
                    fields: vec![label("method", "GET"), label("path", "/users/42")],
                },
                Span {
                    name: "db_query".into(),
                    fields: vec![label("table", "users")],
                },
            ],
            breadcrumbs: vec![
                Breadcrumb {
                    age_ns: 1_204_000_000,
                    text: "accepted conn 17".into(),
                },
                Breadcrumb {
                    age_ns: 2_000_000,
                    text: "query sent".into(),
                },
            ],
            breadcrumbs_dropped: 3,
            ..ThreadContext::default()
        };
        assert_eq!(
            round_trip(&c),
            "  labels: request=\"GET /users/42\" tenant=\"acme\"\n\
             \x20 spans: http_request{method=GET path=/users/42} > db_query{table=users}\n\
             \x20 breadcrumbs (oldest first, 3 older dropped): -1.204 s accepted conn 17 | -0.002 s query sent\n"
        );
    }

    #[test]
    fn awkward_text_is_quoted_and_reads_back_whole() {
        let awkward = [
            "",
            " ",
            "a b",
            "k=v",
            "{x}",
            "\"q\"",
            "back\\slash",
            "bell\u{7}",
            "c1\u{85}",
            "line\u{2028}sep\u{2029}",
            "a | b",
            "pipe|",
            "trailing ",
            "(+2 not kept)",
            "\\x41 literal",
            "é…",
        ];
        for s in awkward {
            let c = ThreadContext {
                labels: vec![label(s, s)],
                labels_not_kept: 2,
                spans: vec![
                    Span {
                        name: s.into(),
                        fields: vec![label(s, s), label("n", s)],
                    },
                    Span {
                        name: s.into(),
                        fields: vec![],
                    },
                ],
                spans_not_kept: 1,
                breadcrumbs: vec![
                    Breadcrumb {
                        age_ns: 5_000_000,
                        text: s.into(),
                    },
                    Breadcrumb {
                        age_ns: 0,
                        text: s.into(),
                    },
                ],
                ..ThreadContext::default()
            };
            let text = round_trip(&c);
            assert_eq!(text.lines().count(), 3, "{text}");
            assert!(!text.contains(['\u{7}', '\u{85}', '\u{2028}']), "{text}");
        }
    }

    #[test]
    fn counts_alone_and_being_updated_round_trip() {
        for c in [
            ThreadContext {
                being_updated: true,
                ..ThreadContext::default()
            },
            ThreadContext {
                labels_not_kept: 4,
                spans_not_kept: 2,
                breadcrumbs_dropped: 9,
                ..ThreadContext::default()
            },
        ] {
            round_trip(&c);
        }
        let lines = ["  -- not context"];
        let mut l = Lines::new(&lines, 1);
        assert_eq!(context(&mut l), Ok(None));
        assert_eq!(l.pos, 0);
    }

    #[test]
    fn lines_not_as_guru_writes_them_are_rejected() {
        for bad in [
            "  labels:",
            "  labels: k=v",
            "  labels: k=\"v\"  j=\"w\"",
            "  labels: k=\"v\\q\"",
            "  labels: \"k\"=\"v\"",
            "  labels: k=\"\\x41\"",
            "  spans: ",
            "  spans: a{}",
            "  spans: a{k=\"v\"}",
            "  spans: a >  b",
            "  breadcrumbs (oldest first):",
            "  breadcrumbs (oldest first): -1.2 s x",
            "  breadcrumbs (oldest first): -01.200 s x",
            "  breadcrumbs (oldest first): -1.200 s \"x\" y",
            "  breadcrumbs (oldest first): -1.200 s  x",
            "  context: being updated when captured (not shown: a torn value is never shown) ",
        ] {
            let lines = [bad];
            let mut l = Lines::new(&lines, 1);
            assert!(context(&mut l).is_err() || !l.done(), "accepted {bad:?}");
        }
    }
}
