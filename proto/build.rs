//! Compiles `tenancy/sync/v1/sync.proto` with `protox` (pure Rust: no system `protoc`) and generates the
//! tonic clients and servers with `tonic-prost-build`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "tenancy/sync/v1/sync.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["."])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
