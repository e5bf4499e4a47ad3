//! Connects over SASL_SSL with SCRAM-SHA-512: TLS with a PEM CA, then SASL authentication.
//! Shows the cluster it reached and writes one record.
//!
//! ```sh
//! scripts/kafka up
//! set -a; eval "$(scripts/kafka env)"; set +a   # the local broker's SASL_SSL listener, user, CA
//! cargo run -p strom-client --example tls_sasl
//! ```
//!
//! Settings, from the environment (the names `scripts/kafka env` prints):
//! `STROM_SASL_SSL_BOOTSTRAP` (host:port of a SASL_SSL listener), `STROM_SASL_USERNAME`,
//! `STROM_SASL_PASSWORD` and `STROM_SSL_CA_LOCATION` (a PEM file with the brokers' CA).

use strom_client::ErrorCode;
use strom_client::{Admin, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord};

fn env(key: &str) -> Result<String, String> {
    std::env::var(key)
        .map_err(|_| format!("{key} is not set (for the local broker: set -a; eval \"$(scripts/kafka env)\"; set +a)"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The Java client's property names, as in a client.properties file.
    let mut config = ClientConfig::new(env("STROM_SASL_SSL_BOOTSTRAP")?);
    config.set("security.protocol", "SASL_SSL")?;
    config.set("ssl.truststore.type", "PEM")?;
    config.set("ssl.truststore.location", &env("STROM_SSL_CA_LOCATION")?)?;
    config.set("sasl.mechanism", "SCRAM-SHA-512")?;
    // Java's form would be sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule
    // required username="..." password="..."; librdkafka's sasl.username/sasl.password are
    // accepted too, and need no quoting.
    config.set("sasl.username", &env("STROM_SASL_USERNAME")?)?;
    config.set("sasl.password", &env("STROM_SASL_PASSWORD")?)?;
    println!("{config:?}"); // the password is printed as [redacted]

    // Certificate files are read, and every setting checked, before anything connects.
    let admin = Admin::connect(config.clone()).await?;
    let cluster = admin.describe_cluster().await?;
    println!(
        "authenticated to cluster {} ({} broker(s))",
        cluster.cluster_id,
        cluster.brokers.len()
    );

    let topic = "strom-tls-sasl-example";
    match admin.create_topics(&[NewTopic::new(topic, 1)]).await {
        Err(e) if e.kafka_code() != Some(ErrorCode::TopicAlreadyExists) => return Err(e.into()),
        _ => {}
    }
    // Producer and consumer configs start from the same client settings.
    let producer = Producer::new(ProducerConfig::from_client(config)).await?;
    let delivered = producer
        .send(ProducerRecord::new(topic, "over TLS and SCRAM"))
        .await?
        .await?;
    println!(
        "wrote {topic}-{}@{} over SASL_SSL",
        delivered.partition, delivered.offset
    );
    producer.close().await?;
    Ok(())
}
