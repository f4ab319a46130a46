//! STATUS: ready when sysfs shows PCI devices and the IPAM plugin is in
//! CNI_PATH.

use vfplex_cni::Request;

use crate::error::SriovError;
use crate::SriovPlugin;

pub fn status(plugin: &SriovPlugin, req: &Request) -> Result<(), SriovError> {
    let pci = plugin.sysfs.root().join("bus/pci/devices");
    if !pci.is_dir() {
        return Err(SriovError::NoPciTree { path: pci });
    }
    if let Some(t) = req.conf.ipam_type() {
        if !crate::ipam::available(t, &req.path) {
            return Err(SriovError::IpamMissing {
                plugin: t.to_string(),
            });
        }
    }
    Ok(())
}
