/work/main/bench/rdkafka-peer/target/release/deps/rdkafka_peer-ebaf48e65b3768cb.d: src/main.rs

/work/main/bench/rdkafka-peer/target/release/deps/rdkafka_peer-ebaf48e65b3768cb: src/main.rs

src/main.rs:
