//! Generates kubelet's PodResources API (client for the plugin, server for the
//! tests' stand-in) with the protoc shipped in protoc-bin-vendored.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the
    // environment while this variable is set.
    unsafe { std::env::set_var("PROTOC", protoc) };
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&["proto/podresources.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/podresources.proto");
    Ok(())
}
