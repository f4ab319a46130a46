//! The netlink seam: [`Rtnl`] is what the plugins ask of rtnetlink in one
//! namespace, [`Namespaces`] hands out one handle per namespace. The kernel's
//! implementation is [`Kernel`]; tests use the recording double
//! (`fake::FakeNet`, feature `fake-netlink`), which needs no root.

use std::fmt;
use std::net::IpAddr;

use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, LinkVfInfo, VfInfo};

use super::{Netlink, NetlinkError, Result};
use crate::netns::{NetNs, NetNsError};

/// rtnetlink in one namespace: links, VF attributes, addresses, routes.
pub trait Rtnl: fmt::Debug {
    /// A link by name, with its VF list when it is a PF.
    fn link_by_name(&mut self, name: &str) -> Result<LinkMessage>;

    /// Change attributes and flags of link `index`; `op` names the change in
    /// errors (and in the double's log).
    fn set_link(
        &mut self,
        op: &str,
        index: u32,
        attributes: Vec<LinkAttribute>,
        flags: Option<(LinkFlags, LinkFlags)>,
    ) -> Result<()>;

    /// Add `ip/prefix` to link `index`.
    fn add_address(&mut self, index: u32, ip: IpAddr, prefix: u8) -> Result<()>;

    /// The addresses on link `index`, as `(address, prefix)`.
    fn addresses(&mut self, index: u32) -> Result<Vec<(IpAddr, u8)>>;

    /// Add a route to `dst/prefix` via `gw` (if any) out of link `index`.
    fn add_route(&mut self, index: u32, dst: IpAddr, prefix: u8, gw: Option<IpAddr>) -> Result<()>;

    /// Move link `index` into the namespace `to`, renamed `name`, in one
    /// request (the link's old name may be taken there, its new one here).
    /// The kernel names the target by a file descriptor (IFLA_NET_NS_FD);
    /// callers hand over the namespace itself, so a double can tell which
    /// one is meant by more than a descriptor number the process may reuse.
    fn move_link(&mut self, op: &str, index: u32, to: &NetNs, name: &str) -> Result<()> {
        use std::os::fd::AsRawFd;
        self.set_link(
            op,
            index,
            vec![
                LinkAttribute::NetNsFd(to.fd().as_raw_fd()),
                LinkAttribute::IfName(name.to_string()),
            ],
            None,
        )
    }

    /// Set VF attributes on a PF: one IFLA_VF_INFO with the given sub-attributes.
    fn set_vf(&mut self, op: &str, pf_index: u32, info: Vec<VfInfo>) -> Result<()> {
        self.set_link(
            op,
            pf_index,
            vec![LinkAttribute::VfInfoList(vec![LinkVfInfo(info)])],
            None,
        )
    }

    /// Administratively up or down; `what` names the link in errors.
    fn set_up(&mut self, index: u32, up: bool, what: &str) -> Result<()> {
        let set = if up {
            LinkFlags::Up
        } else {
            LinkFlags::empty()
        };
        let op = format!("set {what} {}", if up { "up" } else { "down" });
        self.set_link(&op, index, vec![], Some((set, LinkFlags::Up)))
    }
}

impl Rtnl for Netlink {
    fn link_by_name(&mut self, name: &str) -> Result<LinkMessage> {
        Netlink::link_by_name(self, name)
    }

    fn set_link(
        &mut self,
        op: &str,
        index: u32,
        attributes: Vec<LinkAttribute>,
        flags: Option<(LinkFlags, LinkFlags)>,
    ) -> Result<()> {
        Netlink::set_link(self, op, index, attributes, flags)
    }

    fn add_address(&mut self, index: u32, ip: IpAddr, prefix: u8) -> Result<()> {
        Netlink::add_address(self, index, ip, prefix)
    }

    fn addresses(&mut self, index: u32) -> Result<Vec<(IpAddr, u8)>> {
        Netlink::addresses(self, index)
    }

    fn add_route(&mut self, index: u32, dst: IpAddr, prefix: u8, gw: Option<IpAddr>) -> Result<()> {
        Netlink::add_route(self, index, dst, prefix, gw)
    }
}

/// Why a handle inside a namespace could not be had.
#[derive(Debug, thiserror::Error)]
pub enum OpenInError {
    #[error(transparent)]
    Enter(#[from] NetNsError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
}

/// Hands out one rtnetlink handle per namespace.
pub trait Namespaces: fmt::Debug + Send + Sync {
    /// A handle in the namespace the plugin runs in (the host's).
    fn host(&self) -> Result<Box<dyn Rtnl>>;

    /// A handle bound inside `ns` (the socket stays there after the thread
    /// returns).
    fn inside(&self, ns: &NetNs) -> std::result::Result<Box<dyn Rtnl>, OpenInError>;
}

/// The kernel: real rtnetlink sockets.
#[derive(Debug, Default, Clone, Copy)]
pub struct Kernel;

impl Namespaces for Kernel {
    fn host(&self) -> Result<Box<dyn Rtnl>> {
        Ok(Box::new(Netlink::open()?))
    }

    fn inside(&self, ns: &NetNs) -> std::result::Result<Box<dyn Rtnl>, OpenInError> {
        Ok(Box::new(ns.run(Netlink::open)??))
    }
}
