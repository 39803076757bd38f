//! `/proc` text parsing of arbitrary bytes: `/proc/self/maps` lines and
//! chunks, task `stat` and `syscall` files, `status` pending masks, and
//! `linux_dirent64` records. Nothing may panic or read outside the input.
//! Chunked parsing must see the same mappings whatever the read sizes (as the
//! initiator reads `/proc/self/maps` a buffer at a time), and the range table
//! filled from them must answer `find` like a linear scan.
#![no_main]

use guru_core::procfs::{self, Mapping};
use guru_core::ranges::RangeTable;
use libfuzzer_sys::fuzz_target;

fn owned(m: &Mapping<'_>) -> (u64, u64, bool, bool, Vec<u8>) {
    (m.start, m.end, m.readable, m.executable, m.name.to_vec())
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, text)) = data.split_first() else {
        return;
    };

    // Whole-buffer parse vs. the same bytes fed in pieces, keeping the
    // unconsumed tail like the initiator does.
    let mut whole = Vec::new();
    let consumed = procfs::parse_maps_chunk(text, |m| {
        assert!(m.start < m.end);
        whole.push(owned(&m));
    });
    assert!(consumed <= text.len());
    assert!(consumed == 0 || text[consumed - 1] == b'\n');
    let step = usize::from(split).max(1);
    let mut pieces = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for chunk in text[..consumed].chunks(step) {
        pending.extend_from_slice(chunk);
        let used = procfs::parse_maps_chunk(&pending, |m| pieces.push(owned(&m)));
        pending.drain(..used);
    }
    assert!(pending.is_empty());
    assert_eq!(whole, pieces, "chunking changed the parse");

    // The range table: sorted input as /proc gives it, capacity-limited.
    let mut sorted: Vec<Mapping<'_>> = Vec::new();
    procfs::parse_maps_chunk(text, |m| {
        if sorted.last().is_none_or(|l| l.end <= m.start) {
            sorted.push(m);
        }
    });
    let table = RangeTable::new(usize::from(split % 16));
    let mut w = table.writer();
    let mut kept = Vec::new();
    for m in &sorted {
        let before = kept.len();
        w.add(m);
        if m.readable && m.start & 0xfff == 0 && before < usize::from(split % 16) {
            kept.push((m.start, m.end));
        }
    }
    w.finish();
    let mut probes: Vec<u64> = sorted
        .iter()
        .flat_map(|m| {
            [
                m.start,
                m.end,
                m.end.wrapping_sub(1),
                m.start.wrapping_sub(1),
            ]
        })
        .collect();
    probes.push(0);
    probes.push(u64::MAX);
    for p in probes.into_iter().take(256) {
        let linear = kept.iter().find(|(s, e)| *s <= p && p < *e);
        let found = table.find(p);
        assert_eq!(
            found.map(|r| (r.start, r.end)),
            linear.copied(),
            "find({p:#x})"
        );
        if let Some(r) = found {
            assert!(r.contains(p, 1));
            assert!(!r.contains(p, u64::MAX));
        }
    }

    for line in text.split(|&c| c == b'\n').take(64) {
        let _ = procfs::parse_maps_line(line);
    }
    if let Some(st) = procfs::parse_task_stat(text) {
        let r = st.name.as_ptr_range();
        let d = text.as_ptr_range();
        assert!(d.start <= r.start && r.end <= d.end);
        assert!(st.state.is_ascii_alphabetic());
    }
    let _ = procfs::parse_task_syscall(text);
    let _ = procfs::parse_status_pending(text);
    if let Some(n) = procfs::parse_decimal(text) {
        assert_eq!(
            std::str::from_utf8(text).ok().and_then(|s| s.parse().ok()),
            Some(n)
        );
    }
    let mut tids = 0usize;
    procfs::for_each_dirent_number(text, |_| tids += 1);
    assert!(tids <= text.len() / 19);
});
