//! Which transport a session uses: `RPMEM_TRANSPORT` (`auto`, `tcp`,
//! `fabric`), `RPMEM_FABRIC_PROVIDER`, and the switches
//! `RPMEM_ENABLE_VERBS` (libfabric's verbs provider) and
//! `RPMEM_ENABLE_SOCKETS` (our TCP and libfabric's software providers).

use rpmem_fabric::{Hints, Libfabric};
use rpmem_proto::transport::TransportChoice;
use rpmem_transport::fabric::FabricConnector;
use rpmem_transport::initiator::Connector;
use rpmem_transport::tcp::TcpConnector;

use crate::config::Config;
use crate::error::{Error, Result};

/// libfabric providers in order of preference when none is named.
const PROVIDERS: [&str; 3] = ["verbs", "tcp", "sockets"];

/// `RPMEM_TRANSPORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Auto,
    Tcp,
    Fabric,
}

/// The outcome of the policy, before anything is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pick {
    Tcp,
    Fabric(String),
}

/// The transport chosen for a session.
pub(crate) struct Selected {
    /// Opens its lanes.
    pub connector: Box<dyn Connector>,
    /// What to ask the daemon for.
    pub request: TransportChoice,
    /// Why, for the log.
    pub why: String,
}

fn mode(cfg: &Config) -> Result<Mode> {
    match cfg.transport.as_deref().map(str::trim) {
        None | Some("auto") => Ok(Mode::Auto),
        Some("tcp") => Ok(Mode::Tcp),
        Some("fabric") => Ok(Mode::Fabric),
        Some(other) => Err(Error::InvalidArgument(format!(
            "RPMEM_TRANSPORT='{other}': expected auto, tcp or fabric"
        ))),
    }
}

/// The policy. `lib` is whether libfabric loaded (or why not); `probe`
/// says whether libfabric offers a provider here (or why not). On failure,
/// the message names everything tried and why it was refused.
fn pick(
    mode: Mode,
    cfg: &Config,
    lib: std::result::Result<(), String>,
    probe: &dyn Fn(&str) -> std::result::Result<(), String>,
) -> std::result::Result<(Pick, String), String> {
    let switches = format!(
        "RPMEM_ENABLE_VERBS={}, RPMEM_ENABLE_SOCKETS={}",
        u8::from(cfg.enable_verbs),
        u8::from(cfg.enable_sockets)
    );
    let sockets_off = "disabled by RPMEM_ENABLE_SOCKETS=0";
    let mut tried = Vec::new();
    match mode {
        Mode::Tcp => {
            if cfg.enable_sockets {
                return Ok((Pick::Tcp, format!("RPMEM_TRANSPORT=tcp; {switches}")));
            }
            tried.push(format!("tcp: {sockets_off}"));
        }
        Mode::Auto => {
            if !cfg.enable_verbs {
                tried.push("libfabric verbs: disabled by RPMEM_ENABLE_VERBS=0".into());
            } else if let Err(why) = &lib {
                tried.push(format!("libfabric verbs: {why}"));
            } else {
                match probe("verbs") {
                    Ok(()) => {
                        return Ok((
                            Pick::Fabric("verbs".into()),
                            format!("auto: a verbs device is present; {switches}"),
                        ))
                    }
                    Err(why) => tried.push(format!("libfabric verbs: {why}")),
                }
            }
            if cfg.enable_sockets {
                return Ok((Pick::Tcp, format!("auto: {}; {switches}", tried.join("; "))));
            }
            tried.push(format!("tcp: {sockets_off}"));
        }
        Mode::Fabric => {
            if let Err(why) = &lib {
                return Err(format!("RPMEM_TRANSPORT=fabric, but libfabric: {why}"));
            }
            let named = cfg.fabric_provider.as_deref();
            let candidates: Vec<&str> = match named {
                Some(p) => vec![p],
                None => PROVIDERS.to_vec(),
            };
            for p in candidates {
                let refused = match p {
                    "verbs" if !cfg.enable_verbs => Some("disabled by RPMEM_ENABLE_VERBS=0".into()),
                    "tcp" | "sockets" if !cfg.enable_sockets => Some(sockets_off.into()),
                    _ => probe(p).err(),
                };
                match refused {
                    None => {
                        let why = match named {
                            Some(_) => format!("RPMEM_TRANSPORT=fabric, RPMEM_FABRIC_PROVIDER={p}"),
                            None => format!(
                                "RPMEM_TRANSPORT=fabric, best provider offered{}",
                                if tried.is_empty() {
                                    String::new()
                                } else {
                                    format!(" ({})", tried.join("; "))
                                }
                            ),
                        };
                        return Ok((Pick::Fabric(p.into()), format!("{why}; {switches}")));
                    }
                    Some(why) => tried.push(format!("libfabric {p}: {why}")),
                }
            }
        }
    }
    Err(format!("no usable transport: {}", tried.join("; ")))
}

/// Chooses the transport for a new session from `cfg`.
pub(crate) fn select(cfg: &Config) -> Result<Selected> {
    let mode = mode(cfg)?;
    // libfabric is loaded only when it may be used.
    let wants_lib = mode == Mode::Fabric || (mode == Mode::Auto && cfg.enable_verbs);
    let lib = if wants_lib {
        Some(Libfabric::load())
    } else {
        None
    };
    let loaded = match &lib {
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("not loaded".into()),
    };
    let probe = |p: &str| -> std::result::Result<(), String> {
        match &lib {
            Some(Ok(l)) => match l.getinfo(&Hints::default().provider(p)) {
                Ok(v) if !v.is_empty() => Ok(()),
                Ok(_) => Err("not offered".into()),
                Err(e) => Err(format!("not offered ({e})")),
            },
            _ => Err("libfabric not loaded".into()),
        }
    };
    let (pick, why) = pick(mode, cfg, loaded, &probe).map_err(Error::NoTransport)?;
    Ok(match pick {
        Pick::Tcp => Selected {
            connector: Box::new(TcpConnector),
            request: TransportChoice::Tcp,
            why,
        },
        Pick::Fabric(provider) => {
            let lib = match lib {
                Some(Ok(l)) => l,
                _ => unreachable!("a fabric pick needs the library"),
            };
            Selected {
                connector: Box::new(FabricConnector::new(lib, &provider)),
                request: TransportChoice::Fabric { provider },
                why,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(verbs: bool, sockets: bool, provider: Option<&str>) -> Config {
        Config {
            enable_verbs: verbs,
            enable_sockets: sockets,
            fabric_provider: provider.map(String::from),
            ..Config::default()
        }
    }

    /// libfabric answers as on a machine with these providers.
    fn offers(list: &'static [&'static str]) -> impl Fn(&str) -> std::result::Result<(), String> {
        move |p| {
            if list.contains(&p) {
                Ok(())
            } else {
                Err("not offered".into())
            }
        }
    }

    const HERE: &[&str] = &["tcp", "sockets"];
    const RDMA: &[&str] = &["verbs", "tcp", "sockets"];

    fn run(
        mode: Mode,
        c: &Config,
        lib: std::result::Result<(), String>,
        machine: &'static [&'static str],
    ) -> std::result::Result<Pick, String> {
        pick(mode, c, lib, &offers(machine)).map(|(p, _)| p)
    }

    #[test]
    fn auto_takes_verbs_only_where_a_device_is() {
        let on = cfg(true, true, None);
        assert_eq!(
            run(Mode::Auto, &on, Ok(()), RDMA),
            Ok(Pick::Fabric("verbs".into()))
        );
        assert_eq!(run(Mode::Auto, &on, Ok(()), HERE), Ok(Pick::Tcp));
        assert_eq!(
            run(Mode::Auto, &on, Err("missing".into()), RDMA),
            Ok(Pick::Tcp)
        );
        assert_eq!(
            run(Mode::Auto, &cfg(false, true, None), Ok(()), RDMA),
            Ok(Pick::Tcp)
        );
        let e = run(Mode::Auto, &cfg(false, false, None), Ok(()), RDMA).unwrap_err();
        assert!(
            e.contains("RPMEM_ENABLE_VERBS=0") && e.contains("RPMEM_ENABLE_SOCKETS=0"),
            "{e}"
        );
        let e = run(Mode::Auto, &cfg(true, false, None), Ok(()), HERE).unwrap_err();
        assert!(
            e.contains("verbs: not offered") && e.contains("tcp: disabled"),
            "{e}"
        );
    }

    #[test]
    fn fabric_prefers_verbs_then_tcp_then_sockets() {
        let on = cfg(true, true, None);
        assert_eq!(
            run(Mode::Fabric, &on, Ok(()), RDMA),
            Ok(Pick::Fabric("verbs".into()))
        );
        assert_eq!(
            run(Mode::Fabric, &on, Ok(()), HERE),
            Ok(Pick::Fabric("tcp".into()))
        );
        assert_eq!(
            run(Mode::Fabric, &on, Ok(()), &["sockets"]),
            Ok(Pick::Fabric("sockets".into()))
        );
        assert_eq!(
            run(Mode::Fabric, &cfg(false, true, None), Ok(()), RDMA),
            Ok(Pick::Fabric("tcp".into()))
        );
        assert_eq!(
            run(Mode::Fabric, &cfg(true, false, None), Ok(()), RDMA),
            Ok(Pick::Fabric("verbs".into()))
        );
        let e = run(Mode::Fabric, &cfg(false, false, None), Ok(()), RDMA).unwrap_err();
        for what in ["verbs: disabled", "tcp: disabled", "sockets: disabled"] {
            assert!(e.contains(what), "{e}");
        }
    }

    #[test]
    fn a_named_provider_is_used_or_refused_with_the_reason() {
        let named = |p| cfg(true, true, Some(p));
        assert_eq!(
            run(Mode::Fabric, &named("sockets"), Ok(()), RDMA),
            Ok(Pick::Fabric("sockets".into()))
        );
        let e = run(Mode::Fabric, &named("verbs"), Ok(()), HERE).unwrap_err();
        assert!(e.contains("libfabric verbs: not offered"), "{e}");
        let e = run(Mode::Fabric, &cfg(true, false, Some("tcp")), Ok(()), HERE).unwrap_err();
        assert!(e.contains("RPMEM_ENABLE_SOCKETS=0"), "{e}");
    }

    #[test]
    fn without_libfabric_fabric_fails_naming_it_and_tcp_still_works() {
        let on = cfg(true, true, None);
        let e = run(
            Mode::Fabric,
            &on,
            Err("cannot load libfabric.so.1".into()),
            RDMA,
        )
        .unwrap_err();
        assert!(e.contains("libfabric"), "{e}");
        assert_eq!(run(Mode::Tcp, &on, Err("x".into()), RDMA), Ok(Pick::Tcp));
        let e = run(Mode::Tcp, &cfg(true, false, None), Ok(()), RDMA).unwrap_err();
        assert!(e.contains("RPMEM_ENABLE_SOCKETS=0"), "{e}");
    }

    #[test]
    fn the_mode_is_checked() {
        let mut c = Config::default();
        assert_eq!(mode(&c).unwrap(), Mode::Auto);
        c.transport = Some("fabric".into());
        assert_eq!(mode(&c).unwrap(), Mode::Fabric);
        c.transport = Some("rdma".into());
        assert!(matches!(mode(&c), Err(Error::InvalidArgument(_))));
    }
}
