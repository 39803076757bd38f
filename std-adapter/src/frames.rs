//! Captured addresses as model frames ([`crate::model::Frame`]): the module
//! each address is in and what the symbolizer found for it.

use guru_core::ModuleSet;
use guru_core::format::write_escaped;

use crate::model;
use crate::symbols::Symbolized;

/// The module an address is in (its file name, escaped) and the offset in
/// it; `is_return` for return addresses (looked up one byte back).
pub(crate) fn module_of(
    modules: &ModuleSet,
    address: u64,
    is_return: bool,
) -> Option<(String, u64)> {
    modules.resolve(address, is_return).map(|res| {
        let mut name = String::new();
        let _ = write_escaped(&mut name, res.module.short_name());
        (name, res.module_offset)
    })
}

/// One frame of the model from an address, its module and its symbols.
pub(crate) fn frame(
    index: usize,
    address: u64,
    module: Option<(String, u64)>,
    s: Symbolized,
) -> model::Frame {
    let (module, module_offset) = match module {
        Some((name, off)) => (Some(name), Some(model::Hex(off))),
        None => (None, None),
    };
    let (symbol, symbol_offset) = match s.symbol {
        Some((name, off)) => (Some(name.to_string()), Some(model::Hex(off))),
        None => (None, None),
    };
    model::Frame {
        index,
        address: model::Hex(address),
        module,
        module_offset,
        symbol,
        symbol_offset,
        functions: s
            .functions
            .into_iter()
            .map(|f| model::Function {
                name: f.name.map(|n| n.to_string()),
                file: f.file.map(|n| n.to_string()),
                line: f.line,
                inlined: f.inlined,
            })
            .collect(),
    }
}
