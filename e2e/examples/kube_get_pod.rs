//! One GET of a pod with `kube` (kube-rs + k8s-openapi, rustls, a tokio
//! runtime), as a short-lived CNI plugin would make it if it used kube: the
//! other side of the client decision in docs/architecture.md, measured by
//! scripts/bench-api-client.sh beside meta-plugin's `api_get_pod`.

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(ns), Some(name)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: kube_get_pod KUBECONFIG NAMESPACE POD".into());
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let kc = Kubeconfig::read_from(&path)?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        let client = kube::Client::try_from(config)?;
        let pod = Api::<Pod>::namespaced(client, &ns).get(&name).await?;
        println!("{}", pod.metadata.uid.unwrap_or_default());
        Ok(())
    })
}
