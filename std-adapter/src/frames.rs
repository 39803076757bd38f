//! Captured addresses as model frames ([`crate::model::Frame`]): the module
//! each address is in and what the symbolizer found for it.

use std::sync::Arc;

use crate::model;
use crate::symbols::Symbolized;

/// One frame of the model from an address, its module and its symbols. The
/// strings are shared with `s` (no copies).
pub(crate) fn frame(
    index: usize,
    address: u64,
    module: Option<(Arc<str>, u64)>,
    s: Symbolized,
) -> model::Frame {
    let (module, module_offset) = match module {
        Some((name, off)) => (Some(name), Some(model::Hex(off))),
        None => (None, None),
    };
    let (symbol, symbol_offset) = match s.symbol {
        Some((name, off)) => (Some(name), Some(model::Hex(off))),
        None => (None, None),
    };
    model::Frame {
        index,
        address: model::Hex(address),
        module,
        module_offset,
        symbol,
        symbol_offset,
        functions: s.functions,
    }
}
