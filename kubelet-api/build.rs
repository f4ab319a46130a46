//! Generates the kubelet APIs the enabled features ask for (client and
//! server: the plugins are clients and servers, the tests' stand-ins too)
//! with the protoc shipped in the protoc-bin-vendored crate, so no system
//! protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut protos = Vec::new();
    for (feature, proto) in [
        ("CARGO_FEATURE_DEVICEPLUGIN", "proto/deviceplugin.proto"),
        ("CARGO_FEATURE_PODRESOURCES", "proto/podresources.proto"),
        ("CARGO_FEATURE_CRI", "proto/cri.proto"),
    ] {
        println!("cargo:rerun-if-changed={proto}");
        if std::env::var_os(feature).is_some() {
            protos.push(proto);
        }
    }
    if protos.is_empty() {
        return Ok(());
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &protos, &["proto"])?;
    Ok(())
}
