//! The eswitch mode of a device, through devlink (generic netlink family
//! `devlink`): `DEVLINK_CMD_ESWITCH_GET`/`_SET` on the handle `<bus>/<device>`
//! (`pci/0000:3b:00.0`, `netdevsim/netdevsim1`), with `DEVLINK_ATTR_ESWITCH_MODE`.
//! Typed messages (netlink-packet-generic); the kernel's errno is kept, so a
//! device without an eswitch (igb: EOPNOTSUPP, or no devlink instance at
//! all: ENODEV) reads as "none" rather than as a failure.

use std::io;

use netlink_packet_core::{
    emit_u16, parse_string, parse_u16, DecodeError, Emitable, NetlinkMessage, NetlinkPayload, Nla,
    NlaBuffer, NlasIterator, Parseable, ParseableParametrized, NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};
use vfplex_config::node_policy::EswitchMode;

use crate::host::HostError;

// include/uapi/linux/devlink.h
const DEVLINK_CMD_ESWITCH_GET: u8 = 29;
const DEVLINK_CMD_ESWITCH_SET: u8 = 30;
const DEVLINK_ATTR_BUS_NAME: u16 = 1;
const DEVLINK_ATTR_DEV_NAME: u16 = 2;
const DEVLINK_ATTR_ESWITCH_MODE: u16 = 25;
const DEVLINK_ESWITCH_MODE_LEGACY: u16 = 0;
const DEVLINK_ESWITCH_MODE_SWITCHDEV: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Attr {
    BusName(String),
    DevName(String),
    EswitchMode(u16),
    Other,
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        match self {
            Attr::BusName(s) | Attr::DevName(s) => s.len() + 1,
            Attr::EswitchMode(_) => 2,
            Attr::Other => 0,
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Attr::BusName(_) => DEVLINK_ATTR_BUS_NAME,
            Attr::DevName(_) => DEVLINK_ATTR_DEV_NAME,
            Attr::EswitchMode(_) => DEVLINK_ATTR_ESWITCH_MODE,
            Attr::Other => 0,
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Attr::BusName(s) | Attr::DevName(s) => {
                buffer[..s.len()].copy_from_slice(s.as_bytes());
                buffer[s.len()] = 0;
            }
            Attr::EswitchMode(m) => {
                // The buffer is value_len() long: two bytes always fit.
                let _ = emit_u16(buffer, *m);
            }
            Attr::Other => {}
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for Attr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            DEVLINK_ATTR_BUS_NAME => Attr::BusName(parse_string(v)?),
            DEVLINK_ATTR_DEV_NAME => Attr::DevName(parse_string(v)?),
            DEVLINK_ATTR_ESWITCH_MODE => Attr::EswitchMode(parse_u16(v)?),
            _ => Attr::Other,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Devlink {
    cmd: u8,
    attrs: Vec<Attr>,
}

impl GenlFamily for Devlink {
    fn family_name() -> &'static str {
        "devlink"
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        1
    }
}

impl Emitable for Devlink {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for Devlink {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let attrs = NlasIterator::new(buf)
            .map(|nla| nla.and_then(|nla| Attr::parse(&nla)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Devlink {
            cmd: header.cmd,
            attrs,
        })
    }
}

fn open() -> io::Result<Socket> {
    let mut s = Socket::new(NETLINK_GENERIC)?;
    s.bind_auto()?;
    s.connect(&SocketAddr::new(0, 0))?;
    Ok(s)
}

/// Send one request with an ACK asked for, collect its replies until the ACK.
fn request<F>(s: &Socket, msg: GenlMessage<F>) -> io::Result<Vec<F>>
where
    F: GenlFamily + Emitable + ParseableParametrized<[u8], GenlHeader> + std::fmt::Debug,
{
    let mut nl = NetlinkMessage::from(msg);
    nl.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    nl.header.sequence_number = 1;
    nl.finalize();
    let mut tx = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut tx);
    s.send(&tx, 0)?;
    let mut out = Vec::new();
    let mut rx = vec![0u8; 1 << 16];
    loop {
        let n = s.recv(&mut &mut rx[..], 0)?;
        let mut off = 0;
        while off < n {
            let m = NetlinkMessage::<GenlMessage<F>>::deserialize(&rx[off..n])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let len = m.header.length as usize;
            if len == 0 {
                return Ok(out);
            }
            off += len;
            match m.payload {
                NetlinkPayload::Error(e) => {
                    return match e.code {
                        None => Ok(out),
                        Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                    }
                }
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::InnerMessage(g) => out.push(g.payload),
                _ => {}
            }
        }
    }
}

fn family_id(s: &Socket) -> io::Result<u16> {
    let msg = GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName("devlink".into())],
    });
    request(s, msg)?
        .into_iter()
        .flat_map(|c| c.nlas)
        .find_map(|a| match a {
            GenlCtrlAttrs::FamilyId(id) => Some(id),
            _ => None,
        })
        .ok_or_else(|| io::Error::from_raw_os_error(nix::libc::ENOENT))
}

fn call(bus: &str, dev: &str, cmd: u8, extra: Option<Attr>) -> io::Result<Vec<Devlink>> {
    let s = open()?;
    let id = family_id(&s)?;
    let mut attrs = vec![Attr::BusName(bus.into()), Attr::DevName(dev.into())];
    attrs.extend(extra);
    let mut msg = GenlMessage::from_payload(Devlink { cmd, attrs });
    msg.set_resolved_family_id(id);
    request(&s, msg)
}

/// `pci/0000:3b:00.0` → (`pci`, `0000:3b:00.0`).
fn split(handle: &str) -> (&str, &str) {
    handle.split_once('/').unwrap_or(("pci", handle))
}

/// The eswitch mode of the devlink instance `handle` (`bus/device`, or a bare
/// PCI address); `None` when it has none.
pub fn eswitch_mode(handle: &str) -> Result<Option<EswitchMode>, HostError> {
    let (bus, dev) = split(handle);
    let op = format!("devlink dev eswitch show {bus}/{dev}");
    match call(bus, dev, DEVLINK_CMD_ESWITCH_GET, None) {
        Ok(replies) => Ok(replies.iter().flat_map(|r| &r.attrs).find_map(|a| match a {
            Attr::EswitchMode(DEVLINK_ESWITCH_MODE_LEGACY) => Some(EswitchMode::Legacy),
            Attr::EswitchMode(DEVLINK_ESWITCH_MODE_SWITCHDEV) => Some(EswitchMode::Switchdev),
            _ => None,
        })),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(nix::libc::EOPNOTSUPP | nix::libc::ENODEV | nix::libc::ENOENT)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(HostError::io(op, &e)),
    }
}

/// Set the eswitch mode. The kernel's refusal comes back with its errno
/// (EOPNOTSUPP: no eswitch; EBUSY: VFs present on devices that need none).
pub fn set_eswitch_mode(handle: &str, mode: EswitchMode) -> Result<(), HostError> {
    let (bus, dev) = split(handle);
    let value = match mode {
        EswitchMode::Legacy => DEVLINK_ESWITCH_MODE_LEGACY,
        EswitchMode::Switchdev => DEVLINK_ESWITCH_MODE_SWITCHDEV,
    };
    call(
        bus,
        dev,
        DEVLINK_CMD_ESWITCH_SET,
        Some(Attr::EswitchMode(value)),
    )
    .map(|_| ())
    .map_err(|e| {
        let mut h = HostError::io(
            format!("devlink dev eswitch set {bus}/{dev} mode {}", mode.as_str()),
            &e,
        );
        if e.raw_os_error() == Some(nix::libc::EOPNOTSUPP) {
            h.reason
                .push_str(" (the device has no eswitch mode to set)");
        }
        h
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let m = Devlink {
            cmd: DEVLINK_CMD_ESWITCH_SET,
            attrs: vec![
                Attr::BusName("pci".into()),
                Attr::DevName("0000:01:00.0".into()),
                Attr::EswitchMode(1),
            ],
        };
        let mut buf = vec![0u8; m.buffer_len()];
        m.emit(&mut buf);
        let back = Devlink::parse_with_param(
            &buf,
            GenlHeader {
                cmd: DEVLINK_CMD_ESWITCH_SET,
                version: 1,
            },
        )
        .unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn no_devlink_instance_reads_as_no_eswitch() {
        // No device has this name: ENODEV (or no devlink family: ENOENT).
        assert_eq!(eswitch_mode("pci/0000:ff:1f.7"), Ok(None));
    }
}
