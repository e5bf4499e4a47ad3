//! The `ssl.*` and `sasl.*` property names a client knows, and those it refuses: tables
//! [`crate::config`] checks a setting against before anything is built.

/// The Java client's `ssl.*` and `sasl.*` property names (and librdkafka's
/// `sasl.username`/`sasl.password`). The JVM-specific ones are refused
/// ([`unsupported_property`]), a few more when TLS or SASL is set up (`tls.rs`, `sasl.rs`);
/// docs/CONFIG.md lists them all.
pub(crate) fn is_known_property(key: &str) -> bool {
    const KNOWN: &[&str] = &[
        "ssl.protocol",
        "ssl.enabled.protocols",
        "ssl.provider",
        "ssl.cipher.suites",
        "ssl.keystore.type",
        "ssl.keystore.location",
        "ssl.keystore.password",
        "ssl.key.password",
        "ssl.keystore.key",
        "ssl.keystore.certificate.chain",
        // librdkafka's (kcat's) client certificate and key, as two PEM files.
        "ssl.certificate.location",
        "ssl.key.location",
        "ssl.truststore.type",
        "ssl.truststore.location",
        "ssl.truststore.password",
        "ssl.truststore.certificates",
        "ssl.keymanager.algorithm",
        "ssl.trustmanager.algorithm",
        "ssl.endpoint.identification.algorithm",
        "ssl.secure.random.implementation",
        "ssl.engine.factory.class",
        "sasl.mechanism",
        "sasl.jaas.config",
        "sasl.username",
        "sasl.password",
        "sasl.kerberos.service.name",
        "sasl.kerberos.kinit.cmd",
        "sasl.kerberos.ticket.renew.window.factor",
        "sasl.kerberos.ticket.renew.jitter",
        "sasl.kerberos.min.time.before.relogin",
        "sasl.login.refresh.window.factor",
        "sasl.login.refresh.window.jitter",
        "sasl.login.refresh.min.period.seconds",
        "sasl.login.refresh.buffer.seconds",
        "sasl.login.callback.handler.class",
        "sasl.client.callback.handler.class",
        "sasl.login.class",
        "sasl.login.connect.timeout.ms",
        "sasl.login.read.timeout.ms",
        "sasl.login.retry.backoff.ms",
        "sasl.login.retry.backoff.max.ms",
        "sasl.oauthbearer.token.endpoint.url",
        "sasl.oauthbearer.scope.claim.name",
        "sasl.oauthbearer.sub.claim.name",
        "sasl.oauthbearer.jwks.endpoint.url",
        "sasl.oauthbearer.jwks.endpoint.refresh.ms",
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
        "sasl.oauthbearer.clock.skew.seconds",
        "sasl.oauthbearer.expected.audience",
        "sasl.oauthbearer.expected.issuer",
        "sasl.oauthbearer.header.urlencode",
    ];
    KNOWN.contains(&key)
}

/// Why a known `ssl.*`/`sasl.*` property cannot be honoured, when it cannot: JVM-specific
/// machinery with no counterpart here. [`ClientConfig::set`] refuses these with a non-blank
/// value, whatever `security.protocol` is. (A few more are refused when the TLS or SASL
/// settings are built: `tls.rs`, `sasl.rs`.)
pub(crate) fn unsupported_property(key: &str) -> Option<&'static str> {
    const OAUTH: &str = "Strom has no built-in OAuth token client (sasl.oauthbearer.token.endpoint.url is \
                         refused too): fetch, check and refresh tokens in a TokenProvider given to \
                         ClientConfig::with_oauth_token_provider; remove it";
    Some(match key {
        "ssl.provider" => "Java security providers do not exist in Strom (TLS is rustls with ring); remove it",
        "ssl.keymanager.algorithm" | "ssl.trustmanager.algorithm" => {
            "JVM key and trust manager factories do not exist in Strom (rustls checks certificates with \
             webpki, as PKIX); remove it"
        }
        "ssl.secure.random.implementation" => {
            "Strom's TLS takes its randomness from the operating system (ring); remove it"
        }
        "sasl.kerberos.kinit.cmd"
        | "sasl.kerberos.ticket.renew.window.factor"
        | "sasl.kerberos.ticket.renew.jitter"
        | "sasl.kerberos.min.time.before.relogin" => {
            "Strom never runs kinit nor renews tickets itself: a keytab login (useKeyTab=true) gets \
             fresh credentials from the keytab, a ticket-cache login uses the cache as kinit/k5start \
             keep it; remove it"
        }
        "sasl.login.refresh.window.factor"
        | "sasl.login.refresh.window.jitter"
        | "sasl.login.refresh.min.period.seconds"
        | "sasl.login.refresh.buffer.seconds" => {
            "OAUTHBEARER tokens come from the TokenProvider, asked before every authentication and \
             re-authentication: it decides when a token is refreshed; remove it"
        }
        "sasl.login.connect.timeout.ms"
        | "sasl.login.read.timeout.ms"
        | "sasl.login.retry.backoff.ms"
        | "sasl.login.retry.backoff.max.ms"
        | "sasl.oauthbearer.scope.claim.name"
        | "sasl.oauthbearer.sub.claim.name"
        | "sasl.oauthbearer.jwks.endpoint.url"
        | "sasl.oauthbearer.jwks.endpoint.refresh.ms"
        | "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms"
        | "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms"
        | "sasl.oauthbearer.clock.skew.seconds"
        | "sasl.oauthbearer.expected.audience"
        | "sasl.oauthbearer.expected.issuer"
        | "sasl.oauthbearer.header.urlencode" => OAUTH,
        _ => return None,
    })
}
