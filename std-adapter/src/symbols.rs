//! Full symbolization in the reporter thread: demangled function names,
//! inlined frames and `file:line`, from DWARF via `addr2line`.
//!
//! Why `addr2line` (gimli-rs): it is the DWARF reader std's own backtraces
//! use, is maintained with `gimli` and `object`, handles DWARF 2–5, split
//! DWARF (`.dwo`/`.dwp`) and compressed debug sections, and parses lazily:
//! only unit headers (and `.debug_aranges`) up front; a unit's line table and
//! inlining tree are parsed the first time an address in it is looked up. We
//! use 0.26, the release built on the same `gimli` as `framehop`, so the
//! program links one DWARF reader.
//!
//! A module's DWARF is read from our own read-only mapping of its file
//! (`Mapped`); after a report that looked addresses up, the mapping's
//! resident pages are given back (`MADV_DONTNEED`), so the debug sections
//! that parsing touched do not stay in the process's resident memory (on
//! the benchmark fixture: 12 MB of file pages, against the design's 20 MB
//! budget for the first report). Split DWARF and everything
//! [`Builder::heavy_debug_info`](crate::Builder::heavy_debug_info) enables
//! go through addr2line's [`Loader`](addr2line::Loader).
//!
//! Costs are bounded: only modules that appear in a captured stack are
//! loaded, every looked-up address is cached (so later reports resolve known
//! frames without touching DWARF), and the cache is cleared if it ever holds
//! more than [`MAX_CACHED_ADDRESSES`]. Debug info is read from the module
//! file itself; a file whose build-id differs from the loaded module's (the
//! binary was replaced on disk) is not used. Separate debug files
//! (`/usr/lib/debug/.build-id/xx/yyyy.debug`) and compressed DWARF are only
//! used with [`Builder::heavy_debug_info`](crate::Builder::heavy_debug_info):
//! both mean decompressing or parsing whole sections — measured here, glibc's
//! debug file took 300 ms and tens of MB on first use, against the design's
//! first-report budget of 30 ms. Frames without debug info fall back to the
//! core's ELF symbol (`name+0xoff`), and every frame keeps `module+0xoffset`.
//!
//! Names of inlined functions come from DWARF `DW_AT_name` (with
//! `debug = "line-tables-only"` there is no linkage name), so they are short
//! (`mix`, `call_once`); trailing generic arguments are dropped from them to
//! keep lines readable. The physical function's name comes from the ELF
//! symbol when DWARF only has the short name.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use guru_core::ModuleSet;
use guru_core::symbolize::ModuleInfo;

/// Addresses kept in the cache at most.
pub const MAX_CACHED_ADDRESSES: usize = 65_536;

/// One function of a frame (several when calls were inlined): the model's
/// own type, whose strings are shared (`Arc<str>`), so a warm report copies
/// frames out of the cache with one allocation per frame (its function
/// list) instead of one per string.
pub(crate) type Func = crate::model::Function;

/// A symbolized frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Symbolized {
    /// Functions, innermost (inlined) first, the physical function last;
    /// empty when DWARF knows nothing of the address. Shared: a cached
    /// frame is copied into a report without an allocation.
    pub(crate) functions: Arc<[Func]>,
    /// The ELF symbol (demangled) and the offset into it, if any.
    pub(crate) symbol: Option<(Arc<str>, u64)>,
    /// The module's file name (escaped) and the address's offset in it
    /// (address minus load bias), if the address is in a module.
    pub(crate) module: Option<(Arc<str>, u64)>,
}

/// A module's debug info, or why it has none.
enum Debug {
    /// Read from our own mapping of the file (the usual case).
    Mapped(Box<Mapped>),
    /// Through `addr2line`'s loader: split DWARF (it finds the `.dwo`/`.dwp`
    /// files) and, with `heavy_debug_info`, separate debug files and
    /// compressed sections.
    Loaded(Box<addr2line::Loader>),
    Unavailable(String),
}

type Slice = addr2line::gimli::EndianSlice<'static, addr2line::gimli::RunTimeEndian>;

/// A module's DWARF context over a read-only private mapping of its file.
/// After a report the mapping's pages are given back
/// ([`Symbolizer::release_pages`]): the parsed tables stay on the heap, and
/// the debug sections touched while parsing (most of a large binary's
/// `.debug_info`, `.debug_str`, `.debug_line`) no longer count in the
/// process's resident memory; a later lookup faults the pages it needs back
/// in from the page cache.
struct Mapped {
    // Declared before `map`, so dropped before it: it borrows from the mapping.
    ctx: addr2line::Context<Slice>,
    map: guru_core::sys::MappedFile,
}

// SAFETY: `map` is read-only memory that belongs to no thread, and `ctx`
// (slices of it plus heap tables, no thread-local state) is itself `Send`;
// only `MappedFile`'s raw pointer keeps the compiler from deriving it.
#[allow(unsafe_code)]
unsafe impl Send for Mapped {}

impl Debug {
    fn has_debug_info(&self) -> bool {
        !matches!(self, Debug::Unavailable(_))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ModuleKey {
    start: u64,
    bias: u64,
    path: Vec<u8>,
}

impl ModuleKey {
    fn of(m: &ModuleInfo) -> ModuleKey {
        ModuleKey {
            start: m.start,
            bias: m.bias,
            path: m.path.clone(),
        }
    }
}

/// The cache's hasher: a multiply-rotate of the address (SipHash, the
/// default, was a visible part of a warm report that looks up every frame;
/// the keys are the process's own code addresses, not outside input).
#[derive(Default)]
struct AddressHasher(u64);

impl std::hash::Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Figures of one report's symbolization.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Frames symbolized.
    pub(crate) frames: usize,
    /// Of those, answered from the cache.
    pub(crate) cached: usize,
    /// Modules whose debug info was looked for during this report.
    pub(crate) modules_loaded: usize,
    /// Modules with debug info loaded so far.
    pub(crate) modules_with_debug_info: usize,
    /// Wall-clock time spent, ns.
    pub(crate) ns: u64,
    /// CPU time the reporter thread spent, ns (wall time also counts waiting
    /// for a core when the process's own threads keep them busy).
    pub(crate) cpu_ns: u64,
    /// Growth of the resident set while symbolizing, bytes (mapped debug
    /// sections touched and parsed tables; 0 when it shrank).
    pub(crate) rss_growth: u64,
}

/// The symbolizer, kept across reports.
#[derive(Default)]
pub(crate) struct Symbolizer {
    /// Also use separate debug files and compressed DWARF (see the module docs).
    pub(crate) heavy_debug_info: bool,
    modules: HashMap<ModuleKey, Debug>,
    cache: HashMap<(u64, bool), Symbolized, BuildHasherDefault<AddressHasher>>,
    /// Each module's escaped file name (one string shared by its frames).
    module_names: HashMap<ModuleKey, Arc<str>>,
    module_set: usize,
}

impl std::fmt::Debug for Symbolizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbolizer")
            .field("modules", &self.modules.len())
            .field("cached_addresses", &self.cache.len())
            .finish()
    }
}

impl Symbolizer {
    /// Symbolizes `frames` (innermost first; frame 0 is the interrupted pc,
    /// the rest are return addresses) of one of a report's threads. The
    /// caller times the whole batch (its `stats.ns` and `stats.cpu_ns`),
    /// instead of two clock reads (the thread CPU clock is a system call)
    /// for every thread.
    pub(crate) fn symbolize_stack_in_batch(
        &mut self,
        modules: &ModuleSet,
        frames: &[u64],
        stats: &mut Stats,
    ) -> Vec<Symbolized> {
        self.lookup_frames(modules, frames, false, stats)
    }

    /// Symbolizes `frames` that are all return addresses (a tokio task
    /// trace: every frame, the first too, is a call site).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn symbolize_return_addresses(
        &mut self,
        modules: &ModuleSet,
        frames: &[u64],
        stats: &mut Stats,
    ) -> Vec<Symbolized> {
        self.symbolize_frames(modules, frames, true, stats)
    }

    fn symbolize_frames(
        &mut self,
        modules: &ModuleSet,
        frames: &[u64],
        first_is_return: bool,
        stats: &mut Stats,
    ) -> Vec<Symbolized> {
        let t0 = Instant::now();
        let cpu0 = guru_core::sys::thread_cpu_ns();
        let out = self.lookup_frames(modules, frames, first_is_return, stats);
        stats.ns += u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        stats.cpu_ns += guru_core::sys::thread_cpu_ns().saturating_sub(cpu0);
        out
    }

    /// [`Symbolizer::symbolize_frames`] without timing it.
    fn lookup_frames(
        &mut self,
        modules: &ModuleSet,
        frames: &[u64],
        first_is_return: bool,
        stats: &mut Stats,
    ) -> Vec<Symbolized> {
        // The resident set is read (from /proc) only around cache misses: a
        // warm report answers every frame from the cache and reads nothing.
        let mut rss0 = None;
        let set = std::ptr::from_ref(modules) as usize;
        if self.module_set != set {
            // New module set (dlopen/dlclose): addresses may mean something else now.
            self.cache.clear();
            self.module_set = set;
            self.modules
                .retain(|k, _| modules.modules.iter().any(|m| ModuleKey::of(m) == *k));
            self.module_names.clear();
        }
        if self.cache.len() > MAX_CACHED_ADDRESSES {
            self.cache.clear();
        }
        let out = frames
            .iter()
            .enumerate()
            .map(|(n, &address)| {
                stats.frames += 1;
                let is_return = n > 0 || first_is_return;
                let key = (address, is_return);
                if let Some(hit) = self.cache.get(&key) {
                    stats.cached += 1;
                    return hit.clone();
                }
                rss0.get_or_insert_with(resident_bytes);
                let resolved = self.resolve(modules, address, is_return, stats);
                self.cache.insert(key, resolved.clone());
                resolved
            })
            .collect();
        if let Some(rss0) = rss0 {
            stats.rss_growth += resident_bytes().saturating_sub(rss0);
        }
        stats.modules_with_debug_info =
            self.modules.values().filter(|d| d.has_debug_info()).count();
        out
    }

    /// Loads every module of `modules` now (for a module with DWARF: maps it
    /// and builds addr2line's unit index), then gives the touched pages back.
    pub(crate) fn prewarm(&mut self, modules: &ModuleSet) {
        let set = std::ptr::from_ref(modules) as usize;
        if self.module_set != set {
            self.cache.clear();
            self.module_names.clear();
            self.module_set = set;
        }
        for m in modules.modules.iter() {
            let heavy = self.heavy_debug_info;
            self.modules
                .entry(ModuleKey::of(m))
                .or_insert_with(|| load(m, heavy));
        }
        self.release_pages();
    }

    /// Gives back the resident pages of the mapped debug sections (see
    /// [`Mapped`]); called after a report that looked addresses up.
    pub(crate) fn release_pages(&self) {
        for d in self.modules.values() {
            if let Debug::Mapped(m) = d {
                crate::sys::release_file_pages(m.map.bytes());
            }
        }
    }

    /// Modules whose debug info could not be used, and why.
    pub(crate) fn unavailable(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .modules
            .values()
            .filter_map(|d| match d {
                Debug::Unavailable(why) => Some(why.clone()),
                Debug::Mapped(_) | Debug::Loaded(_) => None,
            })
            .collect();
        v.sort();
        v
    }

    fn resolve(
        &mut self,
        modules: &ModuleSet,
        address: u64,
        is_return: bool,
        stats: &mut Stats,
    ) -> Symbolized {
        let Some(r) = modules.resolve(address, is_return) else {
            return Symbolized {
                functions: Arc::from([]),
                symbol: None,
                module: None,
            };
        };
        let symbol = r.symbol.map(|s| {
            let mut name = String::new();
            let _ = guru_core::format::write_demangled(&mut name, s.name);
            (
                Arc::<str>::from(name),
                if is_return { s.offset + 1 } else { s.offset },
            )
        });
        let key = ModuleKey::of(r.module);
        let heavy = self.heavy_debug_info;
        let debug = self.modules.entry(key).or_insert_with(|| {
            stats.modules_loaded += 1;
            load(r.module, heavy)
        });
        let mut functions = Vec::new();
        // The probe is the file's virtual address; return addresses are
        // looked up one byte earlier, inside the call instruction.
        let probe = r.module_offset.wrapping_sub(u64::from(is_return));
        match debug {
            Debug::Mapped(m) => {
                push_frames(m.ctx.find_frames(probe).skip_all_loads(), &mut functions)
            }
            Debug::Loaded(loader) => push_frames(loader.find_frames(probe), &mut functions),
            Debug::Unavailable(_) => {}
        }
        if let Some(last) = functions.last_mut() {
            last.inlined = false;
            // DWARF from `debug = "line-tables-only"` may carry only the short
            // name of the outermost function; the ELF symbol has the full path.
            let short = last.name.as_deref().is_none_or(|n| !n.contains("::"));
            if let (true, Some((sym, _))) = (short, &symbol) {
                last.name = Some(sym.clone());
            }
        }
        let module = Some((self.module_name(r.module), r.module_offset));
        Symbolized {
            functions: functions.into(),
            symbol,
            module,
        }
    }

    /// A module's file name, escaped, made once per module.
    fn module_name(&mut self, m: &ModuleInfo) -> Arc<str> {
        self.module_names
            .entry(ModuleKey::of(m))
            .or_insert_with(|| {
                let mut name = String::new();
                let _ = guru_core::format::write_escaped(&mut name, m.short_name());
                Arc::from(name)
            })
            .clone()
    }
}

/// Appends the functions of one address (innermost first).
fn push_frames<R: addr2line::gimli::Reader, E>(
    frames: Result<addr2line::FrameIter<'_, R>, E>,
    functions: &mut Vec<Func>,
) {
    let Ok(mut iter) = frames else { return };
    while let Ok(Some(frame)) = iter.next() {
        let name = frame
            .function
            .as_ref()
            .and_then(|f| f.raw_name().ok())
            .map(|raw| Arc::<str>::from(demangle(&raw)));
        let (file, line) = match frame.location {
            Some(loc) => (loc.file.map(Arc::<str>::from), loc.line),
            None => (None, None),
        };
        functions.push(Func {
            name,
            file,
            line,
            inlined: true,
        });
    }
}

/// The resident set size from `/proc/self/statm`, bytes (0 if unknown).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * crate::sys::page_size())
}

fn demangle(raw: &str) -> String {
    match rustc_demangle::try_demangle(raw) {
        Ok(d) => format!("{d:#}"),
        Err(_) => strip_trailing_generics(raw).to_string(),
    }
}

/// `call_once<fn(), ()>` → `call_once`, `do_call::<A, B>` → `do_call`;
/// `<T as Trait>::method` and `Channel<T>::recv` are kept as they are.
fn strip_trailing_generics(name: &str) -> &str {
    let mut s = name;
    while s.ends_with('>') {
        let mut depth = 0usize;
        let mut open = None;
        for (i, c) in s.char_indices().rev() {
            match c {
                '>' => depth += 1,
                '<' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        open = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        match open {
            Some(i) if i > 0 => s = s[..i].strip_suffix("::").unwrap_or(&s[..i]),
            _ => break,
        }
    }
    s
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a module's debug info lives: a separate debug file by build-id
/// (only when `heavy` allows it), or the module itself.
fn debug_file(m: &ModuleInfo, heavy: bool) -> Option<PathBuf> {
    if let ([first, rest @ ..], true) = (m.build_id.as_slice(), heavy) {
        let p = PathBuf::from(format!(
            "/usr/lib/debug/.build-id/{first:02x}/{}.debug",
            hex(rest)
        ));
        if p.is_file() {
            return Some(p);
        }
    }
    if m.path.first() != Some(&b'/') {
        return None; // the vDSO and other in-memory images
    }
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(&m.path)))
}

/// What a module file says of itself.
struct Inspection {
    build_id: Option<Vec<u8>>,
    /// It has DWARF line tables.
    has_dwarf: bool,
    /// Its DWARF is compressed (decompressing costs time and memory for the
    /// whole section).
    compressed: bool,
}

fn inspect(path: &Path) -> Result<Inspection, String> {
    use object::{Object, ObjectSection};
    let mut nul = path.as_os_str().as_bytes().to_vec();
    nul.push(0);
    let map = guru_core::sys::MappedFile::open(&nul).map_err(|e| format!("errno {e}"))?;
    let file = object::File::parse(map.bytes()).map_err(|e| e.to_string())?;
    let id = file
        .build_id()
        .map_err(|e| e.to_string())?
        .map(<[u8]>::to_vec);
    let compressed = file.sections().any(|s| {
        let name = s.name_bytes().unwrap_or(b"");
        (name.starts_with(b".debug_") || name.starts_with(b".zdebug_"))
            && (name.starts_with(b".zdebug_")
                || s.compressed_file_range()
                    .is_ok_and(|r| r.format != object::CompressionFormat::None))
    });
    let has_dwarf = file
        .sections()
        .any(|s| matches!(s.name_bytes(), Ok(b".debug_line" | b".zdebug_line")));
    Ok(Inspection {
        build_id: id,
        has_dwarf,
        compressed,
    })
}

fn load(m: &ModuleInfo, heavy: bool) -> Debug {
    let Some(path) = debug_file(m, heavy) else {
        return Debug::Unavailable(format!(
            "{}: no file on disk",
            String::from_utf8_lossy(&m.path)
        ));
    };
    match inspect(&path) {
        Ok(i) if !m.build_id.is_empty() && i.build_id.as_deref() != Some(m.build_id.as_slice()) => {
            return Debug::Unavailable(format!(
                "{}: does not match the loaded module's build-id (replaced on disk?)",
                path.display()
            ));
        }
        Ok(i) if !i.has_dwarf => {
            return Debug::Unavailable(format!("{}: no DWARF line tables", path.display()));
        }
        Ok(i) if i.compressed && !heavy => {
            return Debug::Unavailable(format!(
                "{}: compressed debug info not loaded (see Builder::heavy_debug_info)",
                path.display()
            ));
        }
        Ok(_) => {}
        Err(e) => return Debug::Unavailable(format!("{}: {e}", path.display())),
    }
    if !heavy {
        match load_mapped(&path) {
            Ok(Some(m)) => return Debug::Mapped(Box::new(m)),
            Ok(None) => {} // split DWARF: addr2line's loader finds the rest
            Err(e) => return Debug::Unavailable(format!("{}: {e}", path.display())),
        }
    }
    match addr2line::Loader::new(&path) {
        Ok(l) => Debug::Loaded(Box::new(l)),
        Err(e) => Debug::Unavailable(format!("{}: {e}", path.display())),
    }
}

/// A DWARF context over our own mapping of `path` (uncompressed sections:
/// `load` checked), or `None` for split DWARF (skeleton units).
#[allow(unsafe_code)] // one block: the mapping's lifetime, see SAFETY
fn load_mapped(path: &Path) -> Result<Option<Mapped>, String> {
    use addr2line::gimli::{Dwarf, EndianSlice, RunTimeEndian};
    use object::{Object, ObjectSection};
    let mut nul = path.as_os_str().as_bytes().to_vec();
    nul.push(0);
    let map = guru_core::sys::MappedFile::open(&nul).map_err(|e| format!("errno {e}"))?;
    let bytes = map.bytes();
    // SAFETY: the slice is the mapping itself, which stays at this address
    // and valid until `map` is dropped (moving `MappedFile` does not move the
    // mapping). Only `ctx` keeps slices of it, and `Mapped` drops `ctx`
    // before `map`.
    let data: &'static [u8] = unsafe { std::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) };
    let file = object::File::parse(data).map_err(|e| e.to_string())?;
    let endian = if file.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    let dwarf = Dwarf::load(|id| -> Result<Slice, String> {
        let data = file
            .section_by_name(id.name())
            .and_then(|s| s.data().ok())
            .unwrap_or(&[]);
        Ok(EndianSlice::new(data, endian))
    })?;
    let mut dwarf = dwarf;
    // As addr2line's loader does: units that share an abbreviation table
    // (most of a Rust binary's) parse it once.
    dwarf.populate_abbreviations_cache(addr2line::gimli::AbbreviationsCacheStrategy::Duplicates);
    let mut units = dwarf.units();
    if let Ok(Some(header)) = units.next()
        && dwarf.unit(header).is_ok_and(|u| u.dwo_id.is_some())
    {
        return Ok(None);
    }
    let ctx = addr2line::Context::from_dwarf(dwarf).map_err(|e| e.to_string())?;
    Ok(Some(Mapped { ctx, map }))
}

/// Debug info read from a file, for symbolizing a report somewhere else
/// than the process that wrote it (`guru symbolize`): the same DWARF reader,
/// demangling and inlined-frame handling as the reporter thread's.
///
/// A file is only ever used for the module whose GNU build-id it carries
/// ([`DebugFile::open`] refuses any other): a wrong name is worse than none.
/// It may be the module itself (unstripped), a separate debug file
/// (`objcopy --only-keep-debug`, `/usr/lib/debug/.build-id/ab/cdef….debug`)
/// or debuginfod's `debuginfo`; split DWARF (`.dwo`/`.dwp` next to it) and
/// compressed sections are read through addr2line's loader.
pub struct DebugFile {
    loader: addr2line::Loader,
    path: PathBuf,
}

impl std::fmt::Debug for DebugFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DebugFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The GNU build-id of an ELF file (`None`: it has none). The error says
/// why the file could not be read as ELF.
pub fn build_id_of(path: &Path) -> Result<Option<Vec<u8>>, String> {
    inspect(path).map(|i| i.build_id)
}

impl DebugFile {
    /// Opens `path` as the debug info of the module with build-id
    /// `build_id`. Fails, saying why, when its build-id differs (or it has
    /// none), it has no DWARF line tables, or it cannot be read.
    pub fn open(path: &Path, build_id: &[u8]) -> Result<DebugFile, String> {
        let i = inspect(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if build_id.is_empty() || i.build_id.as_deref() != Some(build_id) {
            return Err(format!(
                "{}: build-id {} is not the module's {}",
                path.display(),
                i.build_id
                    .as_deref()
                    .map_or_else(|| "none".to_string(), hex),
                hex(build_id)
            ));
        }
        if !i.has_dwarf {
            return Err(format!("{}: no DWARF line tables", path.display()));
        }
        let loader =
            addr2line::Loader::new(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(DebugFile {
            loader,
            path: path.to_path_buf(),
        })
    }

    /// The file opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The functions at `module_offset` (the module's own virtual address,
    /// as a report's `module+0xoffset` says), innermost (inlined) first and
    /// the physical function last, with `file:line`; `is_return` for a
    /// return address (every frame but a thread's first): looked up one
    /// byte earlier, inside the call. Empty when the file knows nothing of
    /// the address.
    pub fn functions(&self, module_offset: u64, is_return: bool) -> Vec<crate::model::Function> {
        let probe = module_offset.wrapping_sub(u64::from(is_return));
        let mut functions = Vec::new();
        push_frames(self.loader.find_frames(probe), &mut functions);
        let symbol = self.loader.find_symbol(probe).map(demangle);
        if let Some(last) = functions.last_mut() {
            last.inlined = false;
            let short = last.name.as_deref().is_none_or(|n| !n.contains("::"));
            if let (true, Some(sym)) = (short, &symbol) {
                last.name = Some(Arc::from(sym.as_str()));
            }
        }
        functions
    }

    /// The ELF symbol (demangled) containing `module_offset`, if the file
    /// has a symbol table.
    pub fn symbol(&self, module_offset: u64, is_return: bool) -> Option<Arc<str>> {
        let probe = module_offset.wrapping_sub(u64::from(is_return));
        self.loader
            .find_symbol(probe)
            .map(|s| Arc::from(demangle(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_tails_are_dropped() {
        assert_eq!(strip_trailing_generics("call_once<fn(), ()>"), "call_once");
        assert_eq!(
            strip_trailing_generics("a::do_call::<&dyn F<()>, i32>"),
            "a::do_call"
        );
        assert_eq!(
            strip_trailing_generics("{closure#1}<x::{closure_env#3}, ()>"),
            "{closure#1}"
        );
        assert_eq!(strip_trailing_generics("<T as Tr>::m"), "<T as Tr>::m");
        assert_eq!(strip_trailing_generics("<T as Tr<U>>"), "<T as Tr<U>>");
        assert_eq!(strip_trailing_generics("C<T>::recv"), "C<T>::recv");
        assert_eq!(strip_trailing_generics("bad>>"), "bad>>");
    }

    #[inline(never)]
    fn marker_function() -> u64 {
        std::hint::black_box(marker_function as fn() -> u64 as usize as u64)
    }

    #[test]
    fn resolves_own_function_with_file_and_line() {
        // Modules of this test binary, built the way the core builds them.
        let engine = match guru_core::engine() {
            Some(e) => e,
            None => match guru_core::install(guru_core::Options {
                trigger_signal: None,
                ..Default::default()
            }) {
                Ok(e) => e,
                Err(guru_core::Error::AlreadyInstalled) => guru_core::engine().unwrap(),
                Err(e) => panic!("{e}"),
            },
        };
        let address = marker_function();
        let mut s = Symbolizer::default();
        let mut stats = Stats::default();
        let out = s.symbolize_stack_in_batch(engine.module_set(), &[address], &mut stats);
        let f = out[0].functions.last().expect("a function");
        assert!(
            f.name.as_deref().unwrap_or("").ends_with("marker_function"),
            "{out:?}"
        );
        assert!(
            f.file.as_deref().unwrap_or("").ends_with("symbols.rs"),
            "{out:?}"
        );
        assert!(f.line.is_some());
        assert_eq!(stats.modules_loaded, 1);
        // The second time it comes from the cache.
        let again = s.symbolize_stack_in_batch(engine.module_set(), &[address], &mut stats);
        assert_eq!(again, out);
        assert_eq!(stats.cached, 1);
    }
}
