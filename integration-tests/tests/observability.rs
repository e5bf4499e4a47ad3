//! Tracing spans and metrics of the client, captured while talking to the real broker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use strom_client::{Admin, ClientConfig, NewTopic};
use strom_integration_tests::{broker, unique_topic};
use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn spans_name_api_version_broker_correlation_id_and_latency() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("strom_client=trace")
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let topic = unique_topic("traced");
    admin.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    admin.delete_topics(&[&topic]).await.unwrap();

    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let addr = &broker().bootstrap;
    assert!(log.contains(&format!("connection{{broker={addr}}}")), "{log}");
    let req = log
        .lines()
        .find(|l| l.contains("request{api=\"CreateTopics\"") && l.contains("close"))
        .unwrap_or_else(|| panic!("no CreateTopics request span in:\n{log}"));
    for field in ["version=", &format!("broker={addr}"), "correlation_id=", "latency_us="] {
        assert!(req.contains(field), "{field} missing in {req}");
    }
    assert!(log.contains("request{api=\"ApiVersions\" version=3"), "{log}");

    let m = admin.client().metrics();
    assert_eq!(m.len(), 1, "{m:?}");
    let t = m[0].totals;
    assert!(m[0].connected && m[0].connects == 1);
    assert!(
        t.requests >= 3 && t.responses == t.requests && t.bytes_in > 0 && t.bytes_out > 0,
        "{t:?}"
    );
}
