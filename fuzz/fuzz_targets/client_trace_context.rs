#![no_main]
// traceparent/tracestate header values as a consumer reads them: the first half of the
// input is the traceparent, the rest the tracestate.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (parent, state) = data.split_at(data.len() / 2);
    let _ = strom_client::trace_context::parse(parent, Some(state));
});
