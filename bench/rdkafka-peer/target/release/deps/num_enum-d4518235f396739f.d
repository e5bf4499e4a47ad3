/work/main/bench/rdkafka-peer/target/release/deps/num_enum-d4518235f396739f.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/num_enum-0.7.6/src/lib.rs

/work/main/bench/rdkafka-peer/target/release/deps/libnum_enum-d4518235f396739f.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/num_enum-0.7.6/src/lib.rs

/work/main/bench/rdkafka-peer/target/release/deps/libnum_enum-d4518235f396739f.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/num_enum-0.7.6/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/num_enum-0.7.6/src/lib.rs:
