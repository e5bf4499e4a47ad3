//! W3C Trace Context across Kafka (cargo feature `opentelemetry`).
//!
//! A trace that starts in a producing service continues in the consuming one: [`Producer::send`]
//! (and `try_send`, and the transactional producer's) adds a `traceparent` header, and a
//! `tracestate` header when the span carries one, taken from the current `tracing` span (when
//! the application runs `tracing-opentelemetry`'s layer) or else from OpenTelemetry's current
//! context. A record that already has a `traceparent` header keeps it: what the application
//! (or an upstream hop) put there wins. No valid span, no header.
//!
//! On the consuming side [`ConsumerRecord::trace_context`] reads the headers back and
//! [`ConsumerRecord::process_span`] opens a `tracing` span for processing the record whose
//! OpenTelemetry parent is the producer's span, so exporters show one trace across the
//! broker. The attributes follow OpenTelemetry's messaging conventions (`messaging.system`,
//! `messaging.destination.name`, `messaging.destination.partition.id`,
//! `messaging.kafka.offset`, span kind `consumer`).
//!
//! The headers are written and read here, by W3C Trace Context's rules (version `00`,
//! lowercase hex, all-zero ids invalid; later versions read by their first four fields), so
//! propagation works without configuring a global propagator. A malformed header is ignored
//! as if absent, as the specification says; it is never an error.
//!
//! [`Producer::send`]: crate::Producer::send
//! [`ConsumerRecord::trace_context`]: crate::ConsumerRecord::trace_context
//! [`ConsumerRecord::process_span`]: crate::ConsumerRecord::process_span

use std::str::FromStr;

use bytes::Bytes;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use strom_protocol::record_batch::Headers;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C `traceparent` header.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C `tracestate` header.
pub const TRACESTATE: &str = "tracestate";

/// Adds `traceparent` (and `tracestate`) for the current span to `headers`, unless they
/// already have a `traceparent`.
pub(crate) fn inject(headers: &mut Vec<(String, Option<Bytes>)>) {
    if headers.iter().any(|(k, _)| k == TRACEPARENT) {
        return;
    }
    let Some(sc) = current_span_context() else { return };
    headers.push((TRACEPARENT.to_owned(), Some(Bytes::from(traceparent(&sc)))));
    let state = sc.trace_state().header();
    if !state.is_empty() {
        headers.push((TRACESTATE.to_owned(), Some(Bytes::from(state))));
    }
}

/// The span context of the current `tracing` span, else of OpenTelemetry's current context;
/// `None` when neither is valid.
fn current_span_context() -> Option<SpanContext> {
    let from_tracing = tracing::Span::current().context();
    let sc = from_tracing.span().span_context().clone();
    if sc.is_valid() {
        return Some(sc);
    }
    let cx = Context::current();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// `00-<trace id>-<span id>-<flags>`.
pub fn traceparent(sc: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8() & TraceFlags::SAMPLED.to_u8()
    )
}

/// The remote span context in a `traceparent` value (and a `tracestate` value); `None` when
/// the `traceparent` is not valid W3C Trace Context. An invalid `tracestate` is dropped, the
/// parent kept (the specification's rule).
pub fn parse(traceparent: &[u8], tracestate: Option<&[u8]>) -> Option<SpanContext> {
    let s = std::str::from_utf8(traceparent).ok()?.trim();
    let mut parts = s.splitn(5, '-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let rest = parts.next();
    if version.len() != 2 || !is_lower_hex(version) || version == "ff" {
        return None;
    }
    // Version 00 has exactly four fields; a later one may add fields after a '-'.
    if version == "00" && rest.is_some() {
        return None;
    }
    if trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    if !is_lower_hex(trace) || !is_lower_hex(span) || !is_lower_hex(flags) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let state = tracestate
        .and_then(|t| std::str::from_utf8(t).ok())
        .filter(|t| valid_tracestate(t))
        .and_then(|t| TraceState::from_str(t.trim()).ok())
        .unwrap_or_default();
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags & TraceFlags::SAMPLED.to_u8()),
        true,
        state,
    ))
}

/// W3C Trace Context's `tracestate` grammar: at most 32 `key=value` members separated by
/// commas (empty members allowed); a key is lowercase letters, digits and `_-*/`, starting
/// with a letter or digit, optionally `tenant@system`, at most 256 bytes; a value is 1 to
/// 256 printable ASCII characters other than `,` and `=`, not ending in a space.
fn valid_tracestate(s: &str) -> bool {
    let key_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-*/".contains(&b);
    let simple_key = |k: &str| {
        let b = k.as_bytes();
        !b.is_empty() && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit()) && b.iter().all(|&c| key_char(c))
    };
    let mut members = 0;
    for m in s.split(',') {
        let m = m.trim_matches(|c| c == ' ' || c == '\t');
        if m.is_empty() {
            continue;
        }
        members += 1;
        let Some((k, v)) = m.split_once('=') else { return false };
        let key_ok = k.len() <= 256
            && match k.split_once('@') {
                Some((tenant, system)) => simple_key(tenant) && simple_key(system) && system.len() <= 14,
                None => simple_key(k),
            };
        let value_ok = !v.is_empty()
            && v.len() <= 256
            && !v.ends_with(' ')
            && v.bytes().all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=');
        if !key_ok || !value_ok {
            return false;
        }
    }
    members <= 32
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The span context in a record's headers (the last `traceparent` and `tracestate`).
pub(crate) fn extract(headers: &Headers) -> Option<SpanContext> {
    let parent = headers.last(TRACEPARENT.as_bytes())?.value?;
    let state = headers.last(TRACESTATE.as_bytes()).and_then(|h| h.value);
    parse(&parent, state.as_deref())
}

/// A `process` span for one record of `topic`, a child of `parent` (the producer's span,
/// from [`ConsumerRecord::trace_context`](crate::ConsumerRecord::trace_context)) when there is
/// one; what [`ConsumerRecord::process_span`](crate::ConsumerRecord::process_span) returns,
/// for code that kept only a record's coordinates and context.
pub fn process_span(topic: &str, partition: i32, offset: i64, parent: Option<SpanContext>) -> tracing::Span {
    let span = tracing::info_span!(
        "process",
        otel.name = %format_args!("process {topic}"),
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.destination.name = %topic,
        messaging.destination.partition.id = partition,
        messaging.kafka.offset = offset,
    );
    if let Some(sc) = parent {
        // Only fails when the span is already started or disabled: then there is nothing to
        // link, and processing goes on without the link.
        let _ = span.set_parent(Context::new().with_remote_span_context(sc));
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn w3c_examples_and_invalid_forms() {
        let sc = parse(
            b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            Some(b"congo=t61rcWkgMzE"),
        )
        .unwrap();
        assert_eq!(sc.trace_id().to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(sc.span_id().to_string(), "b7ad6b7169203331");
        assert!(sc.is_sampled() && sc.is_remote());
        assert_eq!(sc.trace_state().get("congo"), Some("t61rcWkgMzE"));
        assert_eq!(
            traceparent(&sc),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        // Unsampled, and a future version with an extra field.
        let sc = parse(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", None).unwrap();
        assert!(!sc.is_sampled());
        assert!(parse(b"cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what", None).is_some());
        // A bad tracestate is dropped, the parent kept.
        let sc = parse(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Some(b"=,=")).unwrap();
        assert_eq!(sc.trace_state().header(), "");
        for bad in ["=,=", "Congo=1", "congo=", "congo=a=b", "a@toolongsystemname1=x"] {
            let sc = parse(
                b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                Some(bad.as_bytes()),
            )
            .unwrap();
            assert_eq!(sc.trace_state().header(), "", "{bad}");
        }
        assert!(valid_tracestate(
            "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE,,tenant@vendor=x"
        ));
        for bad in [
            &b""[..],
            b"00",
            b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            b"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            b"00-00000000000000000000000000000000-b7ad6b7169203331-01",
            b"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            b"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            b"00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
            b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
            b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
            b"0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
            b"\xff\xfe",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333é-01".as_bytes(),
        ] {
            assert!(parse(bad, None).is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn any_bytes_parse_without_panicking() {
        // A deterministic spray of prefixes and mutations of a valid value.
        let valid = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_vec();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for i in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut v = valid[..(seed as usize % (valid.len() + 1))].to_vec();
            if i % 2 == 0 && !v.is_empty() {
                let at = (seed >> 8) as usize % v.len();
                v[at] = (seed >> 16) as u8;
            }
            let _ = parse(&v, Some(&v));
        }
    }

    #[test]
    fn a_record_that_has_a_traceparent_keeps_it() {
        let mut headers = vec![(TRACEPARENT.to_owned(), Some(Bytes::from_static(b"mine")))];
        inject(&mut headers);
        assert_eq!(headers.len(), 1);
        // No span: nothing added.
        let mut headers = Vec::new();
        inject(&mut headers);
        assert!(headers.is_empty());
    }
}
