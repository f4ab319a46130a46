//! The CDI spec against a real CDI consumer: podman (Debian's, installed by
//! the test command's set-up) given `--device <prefix>/<name>=<address>` for
//! a spec vfplex wrote into /var/run/cdi. The test device is a UIO device
//! whose node is the host's /dev/net/tun (a character device every host has),
//! plus a mount of a directory of the test's and the device's env.
//!
//! podman resolves the name from the spec and puts the device node, the
//! mount and the env into the container's OCI spec; an unknown name is
//! refused. The container is then run and looks for all three. Where no OCI
//! runtime can start a container (this project's build VMs: crun and runc
//! both get EPERM setting the container's RLIMIT_NPROC), the test says so
//! and checks the OCI spec podman generated instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use vfplex_config::device_plugin::ResourceConfigList;
use vfplex_device_plugin::cdi;
use vfplex_device_plugin::discovery::PciDevice;

const CDI_DIR: &str = "/var/run/cdi";

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("podman runs")
}

fn text(o: &Output) -> String {
    format!(
        "rc={:?} stdout={} stderr={}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// What the test leaves: the spec, the image, containers; removed on drop.
struct Cleanup {
    resource: String,
    image: String,
    containers: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = podman(&["rm", "-f", c]);
        }
        let _ = podman(&["rmi", "-f", &self.image]);
        let _ = cdi::remove(Path::new(CDI_DIR), &self.resource);
    }
}

/// A one-binary image: busybox (static), imported from a directory.
fn import_image(name: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.path().join("bin/busybox")).unwrap();
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {} -c . | podman import -q - {name} >/dev/null",
            root.path().display()
        ))
        .status()
        .unwrap();
    assert!(st.success(), "podman import {name}: {st}");
    root
}

#[test]
#[ignore = "needs root, podman and busybox-static (the test command installs them): scripts/test.sh runs it (--include-ignored)"]
fn podman_injects_the_spec_vfplex_wrote() {
    let root = nix::unistd::getuid().is_root();
    let have = |p: &str| Path::new(p).exists();
    assert!(
        root && have("/usr/bin/podman") && have("/bin/busybox") && have("/dev/net/tun"),
        "needs root, podman, /bin/busybox and /dev/net/tun (root={root})"
    );
    let tag = std::process::id();
    let resource = format!("vfplex-test.example/cdi_podman_{tag}");
    let mut cleanup = Cleanup {
        resource: resource.clone(),
        image: format!("localhost/vfplex-cdi-test-{tag}"),
        containers: Vec::new(),
    };
    let _rootfs = import_image(&cleanup.image);

    // The spec, as the daemon builds it, for the test device.
    let config = ResourceConfigList::from_slice(
        format!(
            r#"{{"resourceList": [{{"resourceName": "cdi_podman_{tag}", "resourcePrefix": "vfplex-test.example", "selectors": {{"drivers": ["uio_pci_generic"]}}}}]}}"#
        )
        .as_bytes(),
        "intel.com",
    )
    .unwrap()
    .resource_list
    .remove(0);
    let pci = "0000:00:00.1";
    let dev = PciDevice {
        pci: pci.into(),
        driver: Some("uio_pci_generic".into()),
        uio: Some("net/tun".into()),
        ..Default::default()
    };
    let devices: BTreeMap<String, PciDevice> = [(pci.to_string(), dev)].into();
    let mut spec = cdi::spec(&config, &resource, "intel.com", &devices);
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("marker"), "from the host\n").unwrap();
    spec.devices[0].container_edits.mounts.push(cdi::Mount {
        host_path: shared.path().display().to_string(),
        container_path: "/vfplex-test".into(),
        options: vec!["rbind".into(), "ro".into()],
    });
    cdi::write(Path::new(CDI_DIR), &resource, &spec).unwrap();
    let env = format!("PCIDEVICE_VFPLEX_TEST_EXAMPLE_CDI_PODMAN_{tag}_0000_00_00_1={pci}");
    assert_eq!(
        spec.devices[0].container_edits.env,
        std::slice::from_ref(&env)
    );

    let name = cdi::device_name(&resource, pci);
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap()
        .1;
    let nofile = format!("nofile={hard}:{hard}");
    let script = format!(
        "test -c /dev/net/tun && cat /vfplex-test/marker && echo \"${}\"",
        env.split('=').next().unwrap()
    );
    let run = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        &nofile,
        "--device",
        &name,
        &cleanup.image,
        "/bin/busybox",
        "sh",
        "-c",
        &script,
    ]);
    let out = text(&run);
    if run.status.success() {
        assert!(out.contains("from the host"), "{out}");
        assert!(out.contains(pci), "{out}");
        eprintln!("podman ran the container with the CDI device: {out}");
    } else {
        assert!(
            out.contains("rlimit") && !out.contains("CDI"),
            "podman run failed, and not on the runtime's rlimits: {out}"
        );
        eprintln!(
            "\n======== PODMAN CANNOT START CONTAINERS HERE (the OCI runtime: {}); \
             checking the OCI spec podman generated instead ========\n",
            String::from_utf8_lossy(&run.stderr).trim()
        );
        let id = String::from_utf8_lossy(
            &podman(&[
                "create",
                "--network",
                "none",
                "--device",
                &name,
                &cleanup.image,
                "/bin/true",
            ])
            .stdout,
        )
        .trim()
        .to_string();
        assert!(!id.is_empty(), "podman create gave no id");
        cleanup.containers.push(id.clone());
        // init writes the OCI spec, then the runtime fails as above.
        let init = podman(&["init", &id]);
        assert!(!text(&init).contains("CDI"), "{}", text(&init));
        let graph =
            String::from_utf8_lossy(&podman(&["info", "--format", "{{.Store.GraphRoot}}"]).stdout)
                .trim()
                .to_string();
        let oci = PathBuf::from(graph)
            .join("overlay-containers")
            .join(&id)
            .join("userdata/config.json");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&oci).unwrap()).unwrap();
        let devs = v["linux"]["devices"].to_string();
        assert!(devs.contains("\"path\":\"/dev/net/tun\""), "{devs}");
        assert!(devs.contains("\"major\":10"), "{devs}");
        assert!(v["process"]["env"].to_string().contains(&env), "{v}");
        let mounts = v["mounts"].to_string();
        assert!(
            mounts.contains(&format!("\"source\":\"{}\"", shared.path().display()))
                && mounts.contains("\"destination\":\"/vfplex-test\""),
            "{mounts}"
        );
    }

    // A name the spec does not have: refused by podman, saying why.
    let unknown = cdi::device_name(&resource, "0000:99:00.0");
    let id = String::from_utf8_lossy(
        &podman(&[
            "create",
            "--network",
            "none",
            "--device",
            &unknown,
            &cleanup.image,
            "/bin/true",
        ])
        .stdout,
    )
    .trim()
    .to_string();
    if !id.is_empty() {
        cleanup.containers.push(id.clone());
    }
    let start = podman(&["start", &id]);
    assert!(
        text(&start).contains("unresolvable CDI devices"),
        "{}",
        text(&start)
    );
}
