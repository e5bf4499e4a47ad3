//! Subject name strategies (`key.subject.name.strategy`, `value.subject.name.strategy`): the
//! subject a serializer registers and looks its schema up under.

use crate::error::{Error, Result};

/// How a serializer names the subject of a record's schema (Confluent's
/// `io.confluent.kafka.serializers.subject.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectNameStrategy {
    /// `<topic>-key` or `<topic>-value`: one schema (and its evolution) per topic. The default.
    TopicName,
    /// The record's fully qualified name (Avro `namespace.name`, Protobuf `package.Message`, a
    /// JSON schema's `title`): one subject per record type, across topics.
    RecordName,
    /// `<topic>-<fully qualified record name>`: several record types in one topic.
    TopicRecordName,
}

impl SubjectNameStrategy {
    /// By Confluent's class name (`io.confluent.kafka.serializers.subject.TopicNameStrategy`)
    /// or its simple name (`TopicNameStrategy`).
    pub fn from_name(name: &str) -> Result<Self> {
        let simple = name.trim().rsplit('.').next().unwrap_or_default();
        match simple {
            "TopicNameStrategy" => Ok(SubjectNameStrategy::TopicName),
            "RecordNameStrategy" => Ok(SubjectNameStrategy::RecordName),
            "TopicRecordNameStrategy" => Ok(SubjectNameStrategy::TopicRecordName),
            _ => Err(Error::config(format!(
                "subject name strategy {name:?}: expected TopicNameStrategy, RecordNameStrategy or TopicRecordNameStrategy (io.confluent.kafka.serializers.subject.*)"
            ))),
        }
    }

    /// The subject for a key (`is_key`) or value of `topic` whose schema's fully qualified
    /// record name is `record_name` (needed by the record strategies; a schema without a name,
    /// e.g. an Avro `"string"`, cannot use them).
    pub fn subject(self, topic: &str, is_key: bool, record_name: Option<&str>) -> Result<String> {
        let named = || {
            record_name.filter(|n| !n.is_empty()).ok_or_else(|| {
                Error::config(format!(
                    "{self:?}Strategy needs a schema with a record name (a named Avro record, a Protobuf message, a JSON schema with a title)"
                ))
            })
        };
        Ok(match self {
            SubjectNameStrategy::TopicName => format!("{topic}-{}", if is_key { "key" } else { "value" }),
            SubjectNameStrategy::RecordName => named()?.to_owned(),
            SubjectNameStrategy::TopicRecordName => format!("{topic}-{}", named()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_as_confluent_names_them() {
        let s =
            SubjectNameStrategy::from_name("io.confluent.kafka.serializers.subject.TopicRecordNameStrategy").unwrap();
        assert_eq!(
            s.subject("orders", false, Some("com.acme.Order")).unwrap(),
            "orders-com.acme.Order"
        );
        assert_eq!(
            SubjectNameStrategy::TopicName.subject("orders", true, None).unwrap(),
            "orders-key"
        );
        assert_eq!(
            SubjectNameStrategy::RecordName
                .subject("o", false, Some("a.B"))
                .unwrap(),
            "a.B"
        );
        assert!(SubjectNameStrategy::RecordName.subject("o", false, None).is_err());
        assert!(SubjectNameStrategy::from_name("Nope").is_err());
    }
}
