//! librdkafka's property names, for configs pasted from rdkafka or kcat (`-X`): each one is
//! taken under its Java name, with its value converted where the units differ, or refused
//! with a message naming the Java setting to use. docs/CONFIG.md lists them ("librdkafka
//! names"). `sasl.username`, `sasl.password`, `sasl.mechanisms` and `statistics.interval.ms`
//! are implemented under librdkafka's names directly.

use std::borrow::Cow;

use crate::error::unsupported;
use crate::error::{Error, Result};

/// What librdkafka's `key=value` is in Java's terms.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Translation<'a> {
    /// This Java key and value.
    Java(&'static str, Cow<'a, str>),
    /// The value is what Strom always does (`api.version.request=true`): nothing to set.
    Fixed,
}

/// librdkafka's `key=value` in Java's terms; `None` when `key` is not a librdkafka-only
/// name (nor a librdkafka-only value of a shared key).
pub(crate) fn translate<'a>(key: &str, value: &'a str) -> Option<Result<Translation<'a>>> {
    let same = |java: &'static str| Some(Ok(Translation::Java(java, Cow::Borrowed(value))));
    let refuse = |why: &str| Some(Err(unsupported(key, why)));
    match key {
        "metadata.broker.list" => same("bootstrap.servers"),
        "queue.buffering.max.ms" => same("linger.ms"),
        "queue.buffering.max.kbytes" => Some(
            value
                .trim()
                .parse::<u64>()
                .ok()
                .and_then(|kb| kb.checked_mul(1024))
                .map(|bytes| Translation::Java("buffer.memory", Cow::Owned(bytes.to_string())))
                .ok_or_else(|| {
                    Error::config(format!(
                        "queue.buffering.max.kbytes={value:?}: expected a size in KiB (it sets buffer.memory, in bytes)"
                    ))
                }),
        ),
        "fetch.wait.max.ms" => same("fetch.max.wait.ms"),
        "compression.codec" => same("compression.type"),
        "request.required.acks" => same("acks"),
        "message.send.max.retries" => same("retries"),
        "message.timeout.ms" => same("delivery.timeout.ms"),
        "socket.timeout.ms" => same("request.timeout.ms"),
        "topic.metadata.refresh.interval.ms" => same("metadata.max.age.ms"),
        "message.max.bytes" => same("max.request.size"),
        "ssl.ca.location" => same("ssl.truststore.location"),
        // librdkafka's spellings of shared keys' values.
        "auto.offset.reset" => match value.trim() {
            "smallest" | "beginning" => Some(Ok(Translation::Java("auto.offset.reset", Cow::Borrowed("earliest")))),
            "largest" | "end" => Some(Ok(Translation::Java("auto.offset.reset", Cow::Borrowed("latest")))),
            _ => None,
        },
        "ssl.endpoint.identification.algorithm" if value.trim().eq_ignore_ascii_case("none") => Some(Ok(
            Translation::Java("ssl.endpoint.identification.algorithm", Cow::Borrowed("")),
        )),
        // Strom always asks each broker for its API versions.
        "api.version.request" => match value.trim() {
            "true" => Some(Ok(Translation::Fixed)),
            _ => refuse("Strom always asks each broker for its API versions (ApiVersions); only true is accepted"),
        },
        "batch.num.messages" => refuse("Java and Strom bound a batch by bytes: set batch.size"),
        "compression.level" => refuse(
            "Java keeps a level per codec (KIP-390): set compression.gzip.level, compression.lz4.level or \
             compression.zstd.level for the codec in use",
        ),
        "queue.buffering.max.messages" => {
            refuse("the producer's queue is bounded in bytes: set buffer.memory (queue.buffering.max.kbytes is taken)")
        }
        "queued.min.messages" | "queued.max.messages.kbytes" => {
            refuse("the consumer's prefetch is bounded by fetch.max.bytes and max.partition.fetch.bytes: set those")
        }
        "enable.partition.eof" => refuse(
            "there are no end-of-partition events: `strom consume --until-end` stops at the end; in Rust, compare \
             Consumer::position with end_offsets",
        ),
        "enable.auto.offset.store" => refuse(
            "there is no offset store: enable.auto.commit commits what poll returned; commit explicit offsets with \
             commit_sync/commit_async",
        ),
        "debug" => {
            refuse("logging goes through tracing: set STROM_LOG (or RUST_LOG), e.g. STROM_LOG=strom_client=debug")
        }
        "broker.version.fallback" => refuse("Strom asks each broker for its API versions (ApiVersions)"),
        "sticky.partitioning.linger.ms" => refuse(
            "records without a key switch partition after batch.size bytes (Java's KIP-794 partitioner): tune \
             batch.size, or set partitioner.class",
        ),
        "partitioner" => refuse(
            "keys are hashed with Java's murmur2 (as librdkafka's murmur2_random) and records without a key use \
             Java's sticky partitioner: set partitioner.class, or a Partitioner in Rust",
        ),
        "enable.ssl.certificate.verification" => match value.trim() {
            "true" => Some(Ok(Translation::Fixed)),
            _ => refuse(
                "broker certificates are always verified; ssl.endpoint.identification.algorithm= (empty) turns off \
                 only the hostname check",
            ),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::{ClientConfig, ConsumerConfig, ProducerConfig};

    #[test]
    fn librdkafka_names_set_their_java_settings() {
        let mut p = ProducerConfig::default();
        p.set("queue.buffering.max.ms", "7").unwrap();
        p.set("queue.buffering.max.kbytes", "2048").unwrap();
        p.set("compression.codec", "lz4").unwrap();
        p.set("message.timeout.ms", "60000").unwrap();
        p.set("metadata.broker.list", "h1:9092,h2:9092").unwrap();
        p.set("api.version.request", "true").unwrap();
        assert_eq!(p.linger.as_millis(), 7);
        assert_eq!(p.buffer_memory, 2 * 1024 * 1024);
        assert_eq!(p.compression, strom_protocol::Compression::Lz4);
        assert_eq!(p.delivery_timeout.as_millis(), 60_000);
        assert_eq!(p.client.bootstrap_servers, vec!["h1:9092", "h2:9092"]);
        let mut c = ConsumerConfig::default();
        c.set("auto.offset.reset", "smallest").unwrap();
        assert_eq!(c.auto_offset_reset, crate::OffsetReset::Earliest);
        c.set("auto.offset.reset", "end").unwrap();
        assert_eq!(c.auto_offset_reset, crate::OffsetReset::Latest);
        c.set("fetch.wait.max.ms", "250").unwrap();
        assert_eq!(c.fetch_max_wait.as_millis(), 250);
        let mut cc = ClientConfig::default();
        cc.set("socket.timeout.ms", "5000").unwrap();
        assert_eq!(cc.request_timeout.as_millis(), 5000);
        cc.set("ssl.ca.location", "/tmp/ca.pem").unwrap();
        assert_eq!(cc.security["ssl.truststore.location"], "/tmp/ca.pem");
        cc.set("ssl.endpoint.identification.algorithm", "none").unwrap();
        assert_eq!(cc.security["ssl.endpoint.identification.algorithm"], "");
        // Known to is_known_key, so strom's -X takes them.
        for key in [
            "queue.buffering.max.ms",
            "batch.num.messages",
            "enable.partition.eof",
            "debug",
        ] {
            assert!(
                ProducerConfig::is_known_key(key) || ConsumerConfig::is_known_key(key),
                "{key}"
            );
        }
    }

    #[test]
    fn the_ones_without_a_meaning_here_name_what_to_use() {
        let mut p = ProducerConfig::default();
        for (key, value, hint) in [
            ("batch.num.messages", "10000", "batch.size"),
            ("queue.buffering.max.messages", "100000", "buffer.memory"),
            ("debug", "all", "STROM_LOG"),
            ("sticky.partitioning.linger.ms", "10", "batch.size"),
            ("api.version.request", "false", "ApiVersions"),
            (
                "enable.ssl.certificate.verification",
                "false",
                "ssl.endpoint.identification.algorithm",
            ),
            ("queue.buffering.max.kbytes", "lots", "KiB"),
        ] {
            let e = p.set(key, value).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig);
            assert!(
                e.to_string().contains(key) && e.to_string().contains(hint),
                "{key}: {e}"
            );
        }
        let mut c = ConsumerConfig::default();
        let e = c.set("enable.partition.eof", "true").unwrap_err();
        assert!(e.to_string().contains("--until-end"), "{e}");
    }
}
