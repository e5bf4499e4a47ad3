//! ACLs against a broker running KRaft's StandardAuthorizer (a private broker: the shared
//! one runs none, and what other tests see must not change). PLAINTEXT clients are
//! `User:ANONYMOUS`, a super user; the SASL/SCRAM user is the restricted principal whose
//! rights the test grants and revokes. Also: the shared broker answers SECURITY_DISABLED,
//! and a restricted principal may not manage ACLs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use strom_client::{
    AclBinding, AclBindingFilter, AclOperation, AclPatternType, AclPermissionType, AclResourceType, Admin,
    ClientConfig, ErrorKind, NewTopic, Producer, ProducerConfig, ProducerRecord,
};
use strom_integration_tests::{broker, init_test_logging, unique_topic, PrivateBroker};

const AUTHORIZER: &str = "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer \
                          super.users=User:ANONYMOUS";

fn restricted(b: &PrivateBroker) -> (ClientConfig, String) {
    let user = broker().var("STROM_SASL_USERNAME").to_owned();
    let mut cfg = ClientConfig::new(format!("127.0.0.1:{}", b.port_base + 2));
    for (k, v) in [
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", user.as_str()),
        ("sasl.password", broker().var("STROM_SASL_PASSWORD")),
        ("request.timeout.ms", "5000"),
    ] {
        cfg.set(k, v).unwrap();
    }
    (cfg, format!("User:{user}"))
}

/// One record to `topic` as the restricted user: Ok, or the error's kind and text.
async fn try_produce(cfg: &ClientConfig, topic: &str) -> Result<(), (ErrorKind, String)> {
    let mut pc = ProducerConfig::new("");
    pc.client = cfg.clone();
    pc.set("delivery.timeout.ms", "8000").unwrap();
    pc.set("max.block.ms", "8000").unwrap();
    pc.set("enable.idempotence", "false").unwrap();
    let p = Producer::new(pc).await.map_err(|e| (e.kind(), e.to_string()))?;
    let r = async {
        p.send(ProducerRecord::new(topic, "v")).await?.await?;
        Ok::<(), strom_client::Error>(())
    }
    .await;
    let _ = p.close().await;
    r.map_err(|e| (e.kind(), e.to_string()))
}

async fn eventually<F, Fut>(what: &str, mut ok: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok().await {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn grant_use_describe_and_revoke() {
    init_test_logging();
    let b = PrivateBroker::start_with(22392, &[("STROM_KAFKA_OVERRIDES", AUTHORIZER)]);
    let admin = Admin::connect(ClientConfig::new(&b.bootstrap)).await.unwrap();
    let topic = unique_topic("acl");
    admin.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    let (cfg, principal) = restricted(&b);

    // Denied: no ACL names the user.
    let (kind, msg) = try_produce(&cfg, &topic).await.unwrap_err();
    assert_eq!(kind, ErrorKind::Authorization, "{msg}");
    assert!(msg.contains("TOPIC_AUTHORIZATION_FAILED"), "{msg}");

    // Granted: write and describe on the topic, read on every group starting with its name.
    let write = AclBinding::allow(AclResourceType::Topic, &topic, &principal, AclOperation::Write);
    let describe = AclBinding::allow(AclResourceType::Topic, &topic, &principal, AclOperation::Describe);
    let groups = AclBinding::allow(AclResourceType::Group, &topic, &principal, AclOperation::Read).prefixed();
    let created = admin
        .create_acls(&[write.clone(), describe.clone(), groups.clone()])
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    // Creating one that exists is a success.
    assert!(admin.create_acls(std::slice::from_ref(&write)).await.unwrap()[0].is_ok());

    // A broker answers once the controller has committed the bindings, and applies them to
    // its authorizer (which DescribeAcls reads) a moment later.
    let mut want = vec![write.clone(), describe.clone()];
    want.sort();
    let on_topic = AclBindingFilter::resource(AclResourceType::Topic, &topic);
    eventually("the bindings are described", || {
        let (admin, on_topic, want) = (&admin, &on_topic, &want);
        async move { admin.describe_acls(on_topic).await.unwrap() == *want }
    })
    .await;
    // MATCH finds the prefixed group binding for a group named under the prefix.
    let matching = admin
        .describe_acls(&AclBindingFilter {
            resource_type: AclResourceType::Group,
            resource_name: Some(format!("{topic}-consumers")),
            pattern_type: AclPatternType::Match,
            ..AclBindingFilter::ANY
        })
        .await
        .unwrap();
    assert_eq!(matching, vec![groups.clone()]);
    let by_principal = admin
        .describe_acls(&AclBindingFilter {
            principal: Some(principal.clone()),
            permission: AclPermissionType::Allow,
            ..AclBindingFilter::ANY
        })
        .await
        .unwrap();
    for b in [&write, &describe, &groups] {
        assert!(by_principal.contains(b), "{b} missing from {by_principal:?}");
    }

    eventually("the grant reaches the authorizer", || {
        let (cfg, topic) = (cfg.clone(), topic.clone());
        async move { try_produce(&cfg, &topic).await.is_ok() }
    })
    .await;

    // The restricted user may not manage ACLs (no ALTER on the cluster).
    let limited = Admin::connect(cfg.clone()).await.unwrap();
    let mine = AclBinding::allow(AclResourceType::Topic, &topic, &principal, AclOperation::Read);
    match limited.create_acls(std::slice::from_ref(&mine)).await {
        Ok(results) => {
            let e = results[0].as_ref().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Authorization, "{e}");
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::Authorization, "{e}"),
    }

    // Revoked: delete the write binding; the user is denied again.
    let deleted = admin.delete_acls(&[write.to_filter()]).await.unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].as_ref().unwrap(), &vec![write.clone()]);
    eventually("the deletion is described", || {
        let (admin, on_topic, describe) = (&admin, &on_topic, &describe);
        async move { admin.describe_acls(on_topic).await.unwrap() == vec![describe.clone()] }
    })
    .await;
    eventually("the revocation reaches the authorizer", || {
        let (cfg, topic) = (cfg.clone(), topic.clone());
        async move { matches!(try_produce(&cfg, &topic).await, Err((ErrorKind::Authorization, _))) }
    })
    .await;

    // A filter that matches nothing deletes nothing; the rest is cleaned up.
    let none = admin
        .delete_acls(&[AclBindingFilter::resource(AclResourceType::Topic, "no-such-topic")])
        .await
        .unwrap();
    assert_eq!(none[0].as_ref().unwrap(), &Vec::<AclBinding>::new());
    let rest = admin
        .delete_acls(&[AclBindingFilter {
            principal: Some(principal.clone()),
            ..AclBindingFilter::ANY
        }])
        .await
        .unwrap();
    assert_eq!(rest[0].as_ref().unwrap().len(), 2);

    // A bad binding is refused before anything is sent.
    let mut bad = describe.clone();
    bad.principal = "alice".into();
    let e = admin.create_acls(&[bad]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
}

#[tokio::test]
async fn a_broker_without_an_authorizer_says_security_disabled() {
    init_test_logging();
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let e = admin.describe_acls(&AclBindingFilter::ANY).await.unwrap_err();
    assert!(e.to_string().contains("SECURITY_DISABLED"), "{e}");
}
