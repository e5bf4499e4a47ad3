//! Small helpers for building requests: strings and topic names as the codec holds them.

use strom_protocol::message_traits::StrBytes;
use strom_protocol::messages::TopicName;

/// `v` as the codec's string.
pub(crate) fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// `v` as the codec's topic name.
pub(crate) fn topic_name(v: &str) -> TopicName {
    TopicName(s(v))
}
