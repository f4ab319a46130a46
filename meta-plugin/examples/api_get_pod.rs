//! One GET of a pod through the meta plugin's own API client, as a plugin
//! call makes it: measured by scripts/bench-api-client.sh beside e2e's
//! `kube_get_pod` (docs/architecture.md, "Why its own API client").

use std::path::Path;
use std::time::Duration;

use vfplex_meta_plugin::kube::KubeClient;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(ns), Some(name)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: api_get_pod KUBECONFIG NAMESPACE POD".into());
    };
    let client = KubeClient::from_kubeconfig(Path::new(&path), Duration::from_secs(5))?;
    let pod = client.get_pod(&ns, &name)?.ok_or("no such pod")?;
    println!("{}", pod["metadata"]["uid"].as_str().unwrap_or_default());
    Ok(())
}
