//! Sessions with PMDK 1.12's rpmemd: its requests on the ssh channel
//! (`rpmem_proto::pmdk::obc`), its lanes through
//! `rpmem_transport::pmdk`. The engine drives both through the same
//! [`ControlChannel`] and [`Connector`] seams as our own protocol.
//!
//! [`Connector`]: rpmem_transport::initiator::Connector

use rpmem_proto::control::{Answer, Request, Session, SECRET_LEN};
use rpmem_proto::pmdk::obc::{self, Common, MsgType};
use rpmem_proto::pmdk::{Provider, Status as PStatus, PROTO_MAJOR, PROTO_MINOR};
use rpmem_proto::PoolAttr;
use rpmem_transport::pmdk::{choose_provider, PmdkConnector, PmdkSlot, PmdkTarget, BUFF_SIZE};

use crate::config::{Config, Target};
use crate::error::{Error, Result};
use crate::launch::{Control, ControlChannel};

/// The ssh channel to PMDK's rpmemd, speaking its requests.
pub(crate) struct PmdkControl {
    control: Control,
    node: String,
    provider: Provider,
    slot: PmdkSlot,
}

/// Starts `cmd` on `target` again, this time to speak PMDK's protocol: the
/// control channel and the connector that takes its session.
pub(crate) fn start(
    cfg: &Config,
    target: &Target,
    cmd: &str,
) -> Result<(PmdkControl, PmdkConnector)> {
    let provider = choose_provider(&target.host, cfg.enable_verbs, cfg.enable_sockets)
        .map_err(Error::NoTransport)?;
    let connector = PmdkConnector::default();
    let control = PmdkControl {
        control: Control::start(cfg, target, cmd)?,
        node: target.host.clone(),
        provider,
        slot: connector.slot.clone(),
    };
    Ok((control, connector))
}

impl PmdkControl {
    /// The provider the session asks for.
    pub(crate) fn provider(&self) -> Provider {
        self.provider
    }

    fn common(&self, pool_size: u64, nlanes: u32) -> Common {
        Common {
            major: PROTO_MAJOR,
            minor: PROTO_MINOR,
            pool_size,
            nlanes,
            provider: self.provider as u32,
            buff_size: BUFF_SIZE,
        }
    }

    /// The session our engine sees, from PMDK's answer; the connection
    /// attributes go to the connector.
    fn opened(
        &self,
        req: &Request,
        ibc: obc::IbcAttr,
        attr: PoolAttr,
        has_header: bool,
    ) -> Result<Answer> {
        let pool_size = req.pool().map_or(0, |p| p.pool_size);
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(PmdkTarget {
            node: self.node.clone(),
            provider: self.provider,
            ibc,
            buff_size: BUFF_SIZE,
        });
        Ok(Answer::Opened(Session {
            version: PROTO_MINOR,
            nlanes: ibc.nlanes,
            remote_size: pool_size,
            has_header,
            attr,
            addr: self.node.clone(),
            port: u16::try_from(ibc.port).unwrap_or(0),
            secret: [0; SECRET_LEN],
            // PMDK's lanes are described to the connector through its slot.
            fabric: None,
        }))
    }
}

fn proto(e: impl std::fmt::Display) -> Error {
    Error::Protocol(format!("PMDK's rpmemd: {e}"))
}

impl ControlChannel for PmdkControl {
    fn call(&mut self, req: &Request) -> Result<Answer> {
        let (msg, want) = match req {
            Request::Create { pool, attr } => (
                obc::Request::Create {
                    common: self.common(pool.pool_size, pool.nlanes),
                    attr: attr.unwrap_or_default(),
                    pool_desc: pool.pool_set.clone(),
                },
                MsgType::CreateResp,
            ),
            Request::Open { pool } => (
                obc::Request::Open {
                    common: self.common(pool.pool_size, pool.nlanes),
                    pool_desc: pool.pool_set.clone(),
                },
                MsgType::OpenResp,
            ),
            Request::SetAttr { attr } => {
                (obc::Request::SetAttr { attr: *attr }, MsgType::SetAttrResp)
            }
            Request::Close => (obc::Request::Close { flags: 0 }, MsgType::CloseResp),
        };
        let opening = matches!(want, MsgType::CreateResp | MsgType::OpenResp);
        self.control.send(&msg.encode())?;
        let deadline = self.control.deadline(opening);
        self.control.greet(deadline, opening)?;
        let mut hdr = [0u8; obc::RESP_HDR_LEN];
        self.control
            .read_by(&mut hdr, deadline, opening, "before answering")?;
        let (_, ty, size) = obc::response_len(hdr).map_err(proto)?;
        if ty != want {
            return Err(proto(format!("answered {want:?} with {ty:?}")));
        }
        let mut buf = vec![0u8; size];
        buf[..obc::RESP_HDR_LEN].copy_from_slice(&hdr);
        self.control.read_by(
            &mut buf[obc::RESP_HDR_LEN..],
            deadline,
            opening,
            "in the middle of an answer",
        )?;
        let resp = obc::Response::decode(&buf).map_err(proto)?;
        let status = resp.status();
        if status != PStatus::Success {
            return Ok(Answer::Refused {
                status: status.to_ours(),
                message: format!("PMDK's rpmemd: {}", status.message()),
            });
        }
        match (resp, req) {
            (obc::Response::Create { ibc, .. }, Request::Create { attr, .. }) => {
                self.opened(req, ibc, attr.unwrap_or_default(), attr.is_some())
            }
            (obc::Response::Open { ibc, attr, .. }, _) => {
                self.opened(req, ibc, attr, !attr.is_zero())
            }
            _ => Ok(Answer::Done),
        }
    }

    fn finish(&mut self) {
        self.control.finish();
    }
}
