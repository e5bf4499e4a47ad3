/work/main/bench/rdkafka-peer/target/release/deps/cmake-7b2a66dd89425801.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/cmake-0.1.58/src/lib.rs

/work/main/bench/rdkafka-peer/target/release/deps/libcmake-7b2a66dd89425801.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/cmake-0.1.58/src/lib.rs

/work/main/bench/rdkafka-peer/target/release/deps/libcmake-7b2a66dd89425801.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/cmake-0.1.58/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/cmake-0.1.58/src/lib.rs:
