//! Compiles `proto/quiver.proto` with protox (a pure-Rust protobuf compiler), so that building
//! Quiver never needs a system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/quiver.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Its values may be secrets: `lib.rs` implements a Debug that shows the keys only.
        .skip_debug([".quiver.v1.StorageOptions"])
        .compile_fds(descriptors)?;
    Ok(())
}
