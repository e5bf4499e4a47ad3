/work/main/bench/rdkafka-peer/target/release/rdkafka-peer: /work/main/bench/rdkafka-peer/src/main.rs
