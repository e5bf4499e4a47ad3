//! TLS with the pure-Rust graviola crypto provider (strom-client's C-free option) against the
//! real broker's SSL listener, installed the way a program does it: as the process's default
//! rustls provider, which strom-client prefers over the ring provider also built into this
//! test binary (integration-tests enables `tls-ring`; the preference itself is unit-tested in
//! client/src/security/tls.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use strom_integration_tests::broker;

mod security_util;
use security_util::{config, round_trip};

#[tokio::test]
async fn ssl_round_trip_with_the_graviola_provider_installed_by_the_program() {
    rustls_graviola::default_provider()
        .install_default()
        .expect("no other provider installed in this test binary");
    let b = broker();
    round_trip(config(&[
        ("bootstrap.servers", b.var("STROM_SSL_BOOTSTRAP")),
        ("security.protocol", "SSL"),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.location", b.var("STROM_SSL_CA_LOCATION")),
    ]))
    .await;
}
