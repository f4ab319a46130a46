//! A small synchronous rtnetlink handle: typed messages from
//! netlink-packet-route, sent on a socket bound to the namespace it was opened
//! in. Errors keep the kernel's errno so callers can tell EEXIST, ENODEV and
//! EOPNOTSUPP apart. No async runtime: a CNI plugin lives for milliseconds.
//! The plugins reach it through the seam in [`seam`] ([`Rtnl`], [`Namespaces`]).

#[cfg(any(test, feature = "fake-netlink"))]
pub mod fake;
mod seam;

pub use seam::{Kernel, Namespaces, OpenInError, Rtnl};

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    LinkAttribute, LinkExtentMask, LinkFlags, LinkMessage, LinkVfInfo,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A failed netlink operation: what was attempted and the kernel's errno.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {source}")]
pub struct NetlinkError {
    pub op: String,
    #[source]
    pub source: io::Error,
}

impl NetlinkError {
    pub(crate) fn new(op: impl Into<String>, source: io::Error) -> Self {
        NetlinkError {
            op: op.into(),
            source,
        }
    }

    /// The kernel's errno, if the kernel answered with one.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }

    pub fn is(&self, errno: i32) -> bool {
        self.errno() == Some(errno)
    }
}

pub type Result<T> = std::result::Result<T, NetlinkError>;

/// An rtnetlink socket in the namespace of the thread that opened it.
#[derive(Debug)]
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

impl Netlink {
    pub fn open() -> Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)
            .map_err(|e| NetlinkError::new("open rtnetlink socket", e))?;
        socket
            .bind_auto()
            .map_err(|e| NetlinkError::new("bind rtnetlink socket", e))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| NetlinkError::new("connect rtnetlink socket", e))?;
        Ok(Netlink { socket, seq: 0 })
    }

    /// Send one request with NLM_F_ACK and collect replies until the ACK.
    fn request(
        &mut self,
        op: &str,
        msg: RouteNetlinkMessage,
        extra_flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | extra_flags;
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .map_err(|e| NetlinkError::new(op, e))?;

        let mut replies = Vec::new();
        let mut rx = vec![0u8; 1 << 16];
        loop {
            let n = self
                .socket
                .recv(&mut &mut rx[..], 0)
                .map_err(|e| NetlinkError::new(op, e))?;
            let mut offset = 0;
            while offset < n {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rx[offset..n])
                    .map_err(|e| {
                        NetlinkError::new(
                            op,
                            io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
                        )
                    })?;
                let len = reply.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += len;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(replies),
                            Some(code) => Err(NetlinkError::new(
                                op,
                                io::Error::from_raw_os_error(-code.get()),
                            )),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    _ => {}
                }
            }
        }
    }

    /// A link by name, with its VF list when it is a PF.
    pub fn link_by_name(&mut self, name: &str) -> Result<LinkMessage> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::Vf]));
        self.get_link(&format!("get link {name}"), msg)
    }

    fn get_link(&mut self, op: &str, msg: LinkMessage) -> Result<LinkMessage> {
        self.request(op, RouteNetlinkMessage::GetLink(msg), 0)?
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .ok_or_else(|| NetlinkError::new(op, io::Error::from_raw_os_error(nix::libc::ENODEV)))
    }

    /// Change attributes and flags of link `index`.
    pub fn set_link(
        &mut self,
        op: &str,
        index: u32,
        attributes: Vec<LinkAttribute>,
        flags: Option<(LinkFlags, LinkFlags)>,
    ) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        if let Some((set, mask)) = flags {
            msg.header.flags = set;
            msg.header.change_mask = mask;
        }
        msg.attributes = attributes;
        self.request(op, RouteNetlinkMessage::SetLink(msg), 0)
            .map(|_| ())
    }

    /// Add `ip/prefix` to link `index`.
    pub fn add_address(&mut self, index: u32, ip: IpAddr, prefix: u8) -> Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = family(ip);
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(ip));
        msg.attributes.push(AddressAttribute::Address(ip));
        self.request(
            &format!("add address {ip}/{prefix}"),
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(|_| ())
    }

    /// The addresses on link `index`, as `(address, prefix)`.
    pub fn addresses(&mut self, index: u32) -> Result<Vec<(IpAddr, u8)>> {
        let replies = self.request(
            "list addresses",
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => {
                    let prefix = a.header.prefix_len;
                    a.attributes.into_iter().find_map(|at| match at {
                        AddressAttribute::Address(ip) => Some((ip, prefix)),
                        _ => None,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// Add a route to `dst/prefix` via `gw` (if any) out of link `index`.
    pub fn add_route(
        &mut self,
        index: u32,
        dst: IpAddr,
        prefix: u8,
        gw: Option<IpAddr>,
    ) -> Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(dst);
        msg.header.destination_prefix_length = prefix;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = if gw.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        msg.header.kind = RouteType::Unicast;
        if prefix > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(route_address(dst)));
        }
        if let Some(gw) = gw {
            msg.attributes
                .push(RouteAttribute::Gateway(route_address(gw)));
        }
        msg.attributes.push(RouteAttribute::Oif(index));
        let via = gw.map(|g| format!(" via {g}")).unwrap_or_default();
        self.request(
            &format!("add route {dst}/{prefix}{via}"),
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(|_| ())
    }

    /// Delete every default route of the address family of `like` from the
    /// main table; returns how many went.
    pub fn del_default_routes(&mut self, like: IpAddr) -> Result<usize> {
        let mut n = 0;
        loop {
            let mut msg = RouteMessage::default();
            msg.header.address_family = family(like);
            msg.header.destination_prefix_length = 0;
            msg.header.table = RouteHeader::RT_TABLE_MAIN;
            msg.header.scope = RouteScope::NoWhere;
            match self.request(
                "delete default route",
                RouteNetlinkMessage::DelRoute(msg),
                0,
            ) {
                Ok(_) => n += 1,
                Err(e) if e.is(nix::libc::ESRCH) || e.is(nix::libc::ENOENT) => return Ok(n),
                Err(e) => return Err(e),
            }
            if n > 64 {
                return Ok(n);
            }
        }
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn route_address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(v4) => RouteAddress::Inet(v4),
        IpAddr::V6(v6) => RouteAddress::Inet6(v6),
    }
}

/// Attribute readers for a link message.
pub trait LinkExt {
    fn name(&self) -> Option<&str>;
    fn mac(&self) -> Option<String>;
    fn mtu(&self) -> Option<u32>;
    fn vf_infos(&self) -> Vec<&LinkVfInfo>;
    /// Administratively up (IFF_UP).
    fn is_up(&self) -> bool;
}

impl LinkExt for LinkMessage {
    fn name(&self) -> Option<&str> {
        self.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.as_str()),
            _ => None,
        })
    }

    fn mac(&self) -> Option<String> {
        self.attributes.iter().find_map(|a| match a {
            LinkAttribute::Address(b) => Some(format_mac(b)),
            _ => None,
        })
    }

    fn mtu(&self) -> Option<u32> {
        self.attributes.iter().find_map(|a| match a {
            LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        })
    }

    fn is_up(&self) -> bool {
        self.header.flags.contains(LinkFlags::Up)
    }

    fn vf_infos(&self) -> Vec<&LinkVfInfo> {
        self.attributes
            .iter()
            .filter_map(|a| match a {
                LinkAttribute::VfInfoList(list) => Some(list.iter()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

/// `aa:bb:cc:dd:ee:ff`
pub fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parse `aa:bb:cc:dd:ee:ff` (already validated by the config crate).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:00:00:00:00:1a"), Some([2, 0, 0, 0, 0, 0x1a]));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:00:01"), None);
        assert_eq!(format_mac(&[2, 0, 0, 0, 0, 0x1a]), "02:00:00:00:00:1a");
    }

    #[test]
    fn loopback_is_readable() {
        // Every namespace has lo; reading it needs no privilege.
        let mut nl = Netlink::open().unwrap();
        let lo = nl.link_by_name("lo").unwrap();
        assert_eq!(lo.name(), Some("lo"));
        assert!(lo.mtu().is_some());
        let e = nl.link_by_name("vfplex-nope0").unwrap_err();
        assert!(e.is(nix::libc::ENODEV), "{e}");
        assert!(e.to_string().contains("vfplex-nope0"));
    }
}
