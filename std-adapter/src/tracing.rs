//! The spans each thread has entered, in every report (feature `tracing`).
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//! use tracing_subscriber::util::SubscriberInitExt;
//!
//! let _guard = guru::setup_autorun(guru::package!())?;
//! tracing_subscriber::registry().with(guru::tracing::layer()).init();
//!
//! let span = tracing::info_span!("http_request", method = "GET", path = "/users/42");
//! let _entered = span.enter();
//! // a report now shows under this thread:
//! //   spans: http_request{method=GET path=/users/42}
//! # Ok::<(), guru::Error>(())
//! ```
//!
//! The layer formats a span's name and fields once, when the span is
//! created (and appends fields recorded later); entering it copies that
//! text into the thread's context record, leaving it removes it. On a tokio
//! worker, an `#[instrument]`ed future enters its span for each poll, so the
//! worker's spans are those of the task it is polling at that moment.
//!
//! Field values are shown with `Debug`, strings without quotes; names and
//! values are masked like configuration ([`crate::redact`]). A span's text
//! is cut at 128 bytes (`…`), at most 8 spans are kept per thread (deeper
//! ones are counted: `> (+2 not kept)`); see [`crate::context`] for the
//! record and its cost.

use std::fmt::Write as _;

use ::tracing::field::{Field, Visit};
use ::tracing::{Subscriber, span};
use guru_core::context::{FIELD_SEPARATOR, MAX_SPAN_BYTES, Truncating, VALUE_SEPARATOR};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The layer: `tracing_subscriber::registry().with(guru::tracing::layer())`.
pub fn layer() -> Layer {
    Layer { _private: () }
}

/// Records, per thread, the spans it has currently entered (see the module
/// docs). Made by [`layer`].
#[derive(Debug, Clone)]
pub struct Layer {
    _private: (),
}

/// A span's text, made when the span is created.
struct SpanText(heapless::String<MAX_SPAN_BYTES>);

struct Fields<'a, 'b>(&'a mut Truncating<'b, MAX_SPAN_BYTES>);

impl Fields<'_, '_> {
    fn name(&mut self, field: &Field) {
        self.0.set_strip_separators(false);
        let _ = self.0.write_char(FIELD_SEPARATOR);
        self.0.set_strip_separators(true);
        let _ = self.0.write_str(field.name());
        self.0.set_strip_separators(false);
        let _ = self.0.write_char(VALUE_SEPARATOR);
        self.0.set_strip_separators(true);
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.name(field);
        let _ = self.0.write_str(value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.name(field);
        let _ = write!(self.0, "{value:?}");
    }
}

impl<S> tracing_subscriber::Layer<S> for Layer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut text = SpanText(heapless::String::new());
        {
            let mut w = Truncating::new(&mut text.0, MAX_SPAN_BYTES);
            w.set_strip_separators(true);
            let _ = w.write_str(attrs.metadata().name());
            attrs.record(&mut Fields(&mut w));
        }
        span.extensions_mut().insert(text);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(text) = ext.get_mut::<SpanText>() {
            let mut w = Truncating::new(&mut text.0, MAX_SPAN_BYTES);
            w.set_strip_separators(true);
            values.record(&mut Fields(&mut w));
        }
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let ext = span.extensions();
        if let Some(text) = ext.get::<SpanText>() {
            crate::context::enter_span(id.into_u64(), &text.0);
        }
    }

    fn on_exit(&self, id: &span::Id, _ctx: Context<'_, S>) {
        crate::context::exit_span(id.into_u64());
    }
}
