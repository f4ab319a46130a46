//! Generates the kubelet device-plugin API (client and server) with the protoc
//! shipped in the protoc-bin-vendored crate, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the
    // environment while this variable is set.
    unsafe { std::env::set_var("PROTOC", protoc) };
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&["proto/deviceplugin.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/deviceplugin.proto");
    Ok(())
}
