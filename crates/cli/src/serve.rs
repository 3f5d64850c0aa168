//! `sluice serve`: resolve the configuration (defaults < config file <
//! `--set` < explicit flags), start the broker, print `listening on ADDR`,
//! and shut down cleanly on Ctrl-C or SIGTERM.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Args;
use sluice_broker::{Broker, BrokerConfig};

use crate::client::parse_key_value;

/// Where data lives when neither `--data-dir` nor `log.dirs` says.
const DEFAULT_DATA_DIR: &str = "./sluice-data";
/// The Kafka listener when neither `--listen` nor `listeners` says.
const DEFAULT_LISTEN: &str = "127.0.0.1:9092";
/// The node id when neither `--node-id` nor `node.id` says.
const DEFAULT_NODE_ID: i32 = 1;
/// The setting that carries `--controller-listen` to the broker:
/// `BrokerConfig` has no field for it, and Kafka spells it as a
/// `CONTROLLER://` entry in `listeners`.
pub const CONTROLLER_LISTEN_SETTING: &str = "sluice.controller.listen";

/// Flags of `sluice serve`. Options without a clap default so that the
/// resolver can tell "not given" from "given the default".
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Java-properties file of broker configs, by Kafka's names
    /// (`listeners`, `log.dirs`, `node.id`, `controller.quorum.voters`, …).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for logs and metadata [default: ./sluice-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address the Kafka listener binds; port 0 picks a free port
    /// [default: 127.0.0.1:9092].
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Address clients are told to connect to [default: the bound address].
    #[arg(long, value_name = "HOST:PORT")]
    pub advertised_listener: Option<String>,
    /// This node's id [default: 1].
    #[arg(long, value_name = "N")]
    pub node_id: Option<i32>,
    /// Metadata quorum voters, ID@HOST:PORT,… [default: this node alone].
    #[arg(long, value_name = "ID@HOST:PORT,…")]
    pub controller_voters: Option<String>,
    /// Address the controller (Raft) listener binds [default: this node's
    /// entry of --controller-voters; for a broker that is not a voter, a
    /// free port on the --listen host].
    #[arg(long, value_name = "HOST:PORT")]
    pub controller_listen: Option<String>,
    /// Kafka's process.roles: broker,controller | broker | controller
    /// [default: broker,controller when --controller-voters lists this node
    /// or is not given, else broker].
    #[arg(long, value_name = "ROLES")]
    pub process_roles: Option<String>,
    /// Any broker config by Kafka's name; repeatable; overrides --config.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let file_settings = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            parse_properties(&text).with_context(|| format!("in config file {}", path.display()))?
        }
        None => BTreeMap::new(),
    };
    let config = resolve(&args, file_settings)?;
    tracing::info!(
        listen = %config.listen,
        data_dir = %config.data_dir.display(),
        node_id = config.node_id,
        voters = config.controller_voters.len(),
        "starting broker"
    );

    // Handlers go in before the `listening on` line: a script that sends
    // SIGTERM as soon as it reads that line must get a clean shutdown.
    let mut stop = StopSignals::install()?;
    let broker = Broker::start(config).await.context("starting the broker")?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", broker.local_addr())
            .and_then(|()| stdout.flush())
            .context("writing to stdout")?;
    }

    let signal = tokio::select! {
        signal = stop.wait() => signal,
        fatal = broker.fatal_error() => {
            // No clean shutdown: it would mark the data directory clean.
            return Err(anyhow::Error::new(fatal).context("the broker stopped"));
        }
    };
    tracing::info!(signal, "shutting down");
    broker
        .shutdown()
        .await
        .context("shutting down the broker")?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Ctrl-C (SIGINT) and SIGTERM, both of which stop the broker cleanly.
struct StopSignals {
    /// SIGINT, sent by Ctrl-C.
    interrupt: tokio::signal::unix::Signal,
    /// SIGTERM, sent by service managers and `kill`.
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// Waits for either signal; returns its name.
    async fn wait(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// Parses Java-properties text: `key=value` or `key: value` lines, `#` and
/// `!` comments, blank lines, and a trailing `\` continuing a line.
pub fn parse_properties(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut settings = BTreeMap::new();
    let mut pending = String::new();
    let mut pending_start = 0;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if pending.is_empty() {
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            pending_start = index + 1;
        }
        if let Some(continued) = line.strip_suffix('\\') {
            pending.push_str(continued);
            continue;
        }
        pending.push_str(line);
        let entry = std::mem::take(&mut pending);
        let Some(split) = entry.find(['=', ':']) else {
            bail!("line {pending_start}: expected key=value, got {entry:?}");
        };
        let key = entry[..split].trim();
        if key.is_empty() {
            bail!("line {pending_start}: empty key");
        }
        settings.insert(key.to_string(), entry[split + 1..].trim().to_string());
    }
    if !pending.is_empty() {
        bail!("line {pending_start}: file ends inside a continued line");
    }
    Ok(settings)
}

/// Merges defaults, the config file, `--set` and the explicit flags into the
/// broker's configuration. Kafka's names for what has a flag of its own are
/// taken out of the settings map and into the matching field.
pub fn resolve(
    args: &ServeArgs,
    file_settings: BTreeMap<String, String>,
) -> anyhow::Result<BrokerConfig> {
    let mut settings = file_settings;
    settings.extend(args.set.iter().cloned());

    let listeners = settings.remove("listeners");
    let advertised = settings.remove("advertised.listeners");
    let resolved = resolve_listeners(listeners.as_deref(), advertised.as_deref(), &settings)?;
    let listen = resolved.kafka.as_ref().map(|l| l.address.clone());
    let controller_listen = resolved.controller;
    let advertised_listener = resolved.advertised;
    let listener_name = resolved
        .kafka
        .map_or_else(|| DEFAULT_LISTENER_NAME.to_string(), |l| l.name);
    let mut data_dir = None;
    for name in ["log.dirs", "log.dir"] {
        if let Some(dirs) = settings.remove(name) {
            let dirs: Vec<&str> = dirs.split(',').map(str::trim).collect();
            if dirs.len() != 1 || dirs[0].is_empty() {
                bail!("setting {name}: sluice uses exactly one data directory, got {dirs:?}");
            }
            data_dir = data_dir.or(Some(PathBuf::from(dirs[0])));
        }
    }
    let mut node_id = None;
    for name in ["node.id", "broker.id"] {
        if let Some(value) = settings.remove(name) {
            let id = value
                .parse::<i32>()
                .with_context(|| format!("setting {name}: not a node id: {value:?}"))?;
            node_id = node_id.or(Some(id));
        }
    }
    let mut voters = settings.remove("controller.quorum.voters");
    if let Some(flag) = &args.controller_voters {
        voters = Some(flag.clone());
    }
    let controller_voters = match voters {
        Some(text) => parse_voters(&text).context("in controller voters")?,
        None => Vec::new(),
    };

    if let Some(roles) = &args.process_roles {
        settings.insert("process.roles".to_string(), roles.clone());
    }
    if let Some(address) = args.controller_listen.clone().or(controller_listen) {
        check_host_port(&address).context("in --controller-listen")?;
        settings.insert(CONTROLLER_LISTEN_SETTING.to_string(), address);
    }
    let listen = args
        .listen
        .clone()
        .or(listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    check_host_port(&listen).context("in --listen")?;
    let advertised_listener = args.advertised_listener.clone().or(advertised_listener);
    if let Some(address) = &advertised_listener {
        check_host_port(address).context("in --advertised-listener")?;
    }
    Ok(BrokerConfig {
        listen,
        listener_name,
        advertised_listener,
        data_dir: args
            .data_dir
            .clone()
            .or(data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        node_id: args.node_id.or(node_id).unwrap_or(DEFAULT_NODE_ID),
        controller_voters,
        settings,
    })
}

/// The name of the Kafka listener when `listeners` does not name one.
const DEFAULT_LISTENER_NAME: &str = "PLAINTEXT";
/// `controller.listener.names` when unset.
const DEFAULT_CONTROLLER_LISTENER_NAMES: &str = "CONTROLLER";
/// Kafka's `listener.security.protocol.map` default.
const DEFAULT_PROTOCOL_MAP: &str =
    "SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT";
/// Kafka's security protocols.
const SECURITY_PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// One entry of `listeners` or `advertised.listeners`.
#[derive(Clone, Debug, PartialEq)]
struct Listener {
    /// Its name (`PLAINTEXT` for a bare `host:port`).
    name: String,
    /// `host:port`; an empty host (`PLAINTEXT://:9092`) is every interface.
    address: String,
}

/// What `listeners`, `advertised.listeners` and the names around them
/// resolve to: Sluice serves one Kafka listener and one controller listener.
#[derive(Debug, PartialEq)]
struct ResolvedListeners {
    /// The Kafka listener, when `listeners` has one.
    kafka: Option<Listener>,
    /// The controller listener's address, when `listeners` has one.
    controller: Option<String>,
    /// The advertised address of the Kafka listener.
    advertised: Option<String>,
}

/// Resolves the listener configs the Kafka way: every listener's name has a
/// security protocol in `listener.security.protocol.map` (Kafka's default
/// when unset, with the `controller.listener.names` mapped to PLAINTEXT),
/// that protocol is PLAINTEXT (TLS and SASL are not built yet), there is at
/// most one listener besides the controller's, `advertised.listeners` names
/// only it, and `inter.broker.listener.name` (or
/// `security.inter.broker.protocol`) names it too: brokers replicate over
/// the one Kafka listener.
fn resolve_listeners(
    listeners: Option<&str>,
    advertised: Option<&str>,
    settings: &BTreeMap<String, String>,
) -> anyhow::Result<ResolvedListeners> {
    let controller_names: Vec<&str> = settings
        .get("controller.listener.names")
        .map_or(DEFAULT_CONTROLLER_LISTENER_NAMES, String::as_str)
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    let protocols = protocol_map(
        settings
            .get("listener.security.protocol.map")
            .map(String::as_str),
        &controller_names,
    )
    .context("in setting listener.security.protocol.map")?;
    let mut kafka = None;
    let mut controller = None;
    if let Some(text) = listeners {
        for listener in parse_listener_list(text).context("in setting listeners")? {
            let protocol = protocols.get(&listener.name).with_context(|| {
                format!(
                    "No security protocol defined for listener {}",
                    listener.name
                )
            })?;
            if protocol != "PLAINTEXT" {
                bail!(
                    "listener {} uses security protocol {protocol}: Sluice serves PLAINTEXT \
                     listeners only (TLS and SASL are not built yet)",
                    listener.name
                );
            }
            if controller_names.contains(&listener.name.as_str()) {
                controller = Some(listener.address);
            } else if let Some(first) = kafka.replace(listener.clone()) {
                bail!(
                    "in setting listeners: sluice serves one Kafka listener, got {} and {}",
                    first.name,
                    listener.name
                );
            }
        }
    }
    let kafka_name = kafka
        .as_ref()
        .map_or(DEFAULT_LISTENER_NAME, |l: &Listener| l.name.as_str())
        .to_string();
    let mut advertised_address = None;
    if let Some(text) = advertised {
        for listener in parse_listener_list(text).context("in setting advertised.listeners")? {
            if listener.name != kafka_name {
                bail!(
                    "advertised.listeners listener names must be equal to or a subset of the ones \
                     defined in listeners. Found {}. The valid options based on the current \
                     configuration are {kafka_name}",
                    listener.name
                );
            }
            advertised_address = Some(listener.address);
        }
    }
    let inter_broker = settings.get("inter.broker.listener.name").map(|s| s.trim());
    let inter_protocol = settings
        .get("security.inter.broker.protocol")
        .map(|s| s.trim());
    match (inter_broker, inter_protocol) {
        (Some(_), Some(_)) => bail!(
            "Only one of inter.broker.listener.name and security.inter.broker.protocol should be set."
        ),
        (Some(name), None) if name != kafka_name => bail!(
            "inter.broker.listener.name must be a listener name defined in advertised.listeners. \
             The valid options based on currently configured listeners are {kafka_name}"
        ),
        (None, Some(protocol)) if protocol != "PLAINTEXT" => bail!(
            "security.inter.broker.protocol={protocol}: Sluice's brokers replicate over PLAINTEXT \
             only (TLS and SASL are not built yet)"
        ),
        _ => {}
    }
    Ok(ResolvedListeners {
        kafka,
        controller,
        advertised: advertised_address,
    })
}

/// Parses `listener.security.protocol.map` (`NAME:PROTOCOL,…`), Kafka's
/// default when unset, where the controller listener names map to
/// PLAINTEXT.
fn protocol_map(
    text: Option<&str>,
    controller_names: &[&str],
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for entry in text
        .unwrap_or(DEFAULT_PROTOCOL_MAP)
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let Some((name, protocol)) = entry.split_once(':') else {
            bail!("expected LISTENER_NAME:SECURITY_PROTOCOL, got {entry:?}");
        };
        let (name, protocol) = (
            name.trim().to_ascii_uppercase(),
            protocol.trim().to_ascii_uppercase(),
        );
        if !SECURITY_PROTOCOLS.contains(&protocol.as_str()) {
            bail!("Invalid security protocol {protocol:?} for listener {name} (valid: {SECURITY_PROTOCOLS:?})");
        }
        map.insert(name, protocol);
    }
    if text.is_none() {
        for name in controller_names {
            map.entry(name.to_string())
                .or_insert_with(|| "PLAINTEXT".to_string());
        }
    }
    Ok(map)
}

/// Parses a `listeners` value: `NAME://host:port,…` or a bare `host:port`
/// (PLAINTEXT). Names are unique, as Kafka requires; an empty host binds
/// every interface.
fn parse_listener_list(text: &str) -> anyhow::Result<Vec<Listener>> {
    let mut listeners: Vec<Listener> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, address) = match entry.split_once("://") {
            Some((name, address)) => (name.trim().to_ascii_uppercase(), address),
            None => (DEFAULT_LISTENER_NAME.to_string(), entry),
        };
        if name.is_empty() {
            bail!("a listener without a name: {entry:?}");
        }
        let address = if address.starts_with(':') {
            format!("0.0.0.0{address}")
        } else {
            address.to_string()
        };
        check_host_port(&address)?;
        if listeners.iter().any(|l| l.name == name) {
            bail!("Each listener must have a different name, {name} is listed twice in {text:?}");
        }
        listeners.push(Listener { name, address });
    }
    Ok(listeners)
}

/// Parses `controller.quorum.voters`: `ID@HOST:PORT,…`.
fn parse_voters(text: &str) -> anyhow::Result<Vec<(i32, String)>> {
    let mut voters = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((id, address)) = entry.split_once('@') else {
            bail!("expected ID@HOST:PORT, got {entry:?}");
        };
        let id = id
            .trim()
            .parse::<i32>()
            .with_context(|| format!("not a node id in {entry:?}"))?;
        check_host_port(address)?;
        if voters.iter().any(|(existing, _)| *existing == id) {
            bail!("voter {id} is listed twice");
        }
        voters.push((id, address.to_string()));
    }
    Ok(voters)
}

/// Rejects what cannot be a `host:port` early, with the value in the message.
fn check_host_port(address: &str) -> anyhow::Result<()> {
    let Some((host, port)) = address.rsplit_once(':') else {
        bail!("expected HOST:PORT, got {address:?}");
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        bail!("expected HOST:PORT, got {address:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn properties_files() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("# comment\n! other\n\n", &[]),
            ("a=1\nb = 2 \n", &[("a", "1"), ("b", "2")]),
            ("a: 1", &[("a", "1")]),
            ("url=http://x:1", &[("url", "http://x:1")]),
            ("a=1,\\\n  2", &[("a", "1,2")]),
            ("a=1\na=2", &[("a", "2")]),
            ("a=", &[("a", "")]),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_properties(text).unwrap(), map(expected), "{text:?}");
        }
        for bad in ["novalue", "=1", "a=1\\"] {
            assert!(parse_properties(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn defaults() {
        let config = resolve(&ServeArgs::default(), BTreeMap::new()).unwrap();
        assert_eq!(config.listen, "127.0.0.1:9092");
        assert_eq!(config.advertised_listener, None);
        assert_eq!(config.data_dir, PathBuf::from("./sluice-data"));
        assert_eq!(config.node_id, 1);
        assert!(config.controller_voters.is_empty());
        assert!(config.settings.is_empty());
    }

    #[test]
    fn kafka_names_map_onto_fields() {
        let file = map(&[
            (
                "listeners",
                "PLAINTEXT://0.0.0.0:9093,CONTROLLER://127.0.0.1:9094",
            ),
            ("advertised.listeners", "PLAINTEXT://kafka-1:9093"),
            ("log.dirs", "/var/sluice"),
            ("node.id", "3"),
            ("controller.quorum.voters", "3@h1:9094,4@h2:9094"),
            ("num.partitions", "6"),
        ]);
        let config = resolve(&ServeArgs::default(), file).unwrap();
        assert_eq!(config.listen, "0.0.0.0:9093");
        assert_eq!(config.advertised_listener.as_deref(), Some("kafka-1:9093"));
        assert_eq!(config.data_dir, PathBuf::from("/var/sluice"));
        assert_eq!(config.node_id, 3);
        assert_eq!(
            config.controller_voters,
            vec![(3, "h1:9094".to_string()), (4, "h2:9094".to_string())]
        );
        assert_eq!(
            config.settings,
            map(&[
                ("num.partitions", "6"),
                (CONTROLLER_LISTEN_SETTING, "127.0.0.1:9094")
            ])
        );
    }

    #[test]
    fn precedence_file_then_set_then_flags() {
        let file = map(&[("node.id", "3"), ("num.partitions", "6"), ("log.dir", "/a")]);
        let args = ServeArgs {
            set: vec![
                ("num.partitions".to_string(), "9".to_string()),
                ("node.id".to_string(), "4".to_string()),
            ],
            ..ServeArgs::default()
        };
        let config = resolve(&args, file.clone()).unwrap();
        assert_eq!(config.node_id, 4);
        assert_eq!(config.settings, map(&[("num.partitions", "9")]));
        assert_eq!(config.data_dir, PathBuf::from("/a"));

        let args = ServeArgs {
            node_id: Some(7),
            data_dir: Some(PathBuf::from("/b")),
            listen: Some("127.0.0.1:0".to_string()),
            ..args
        };
        let config = resolve(&args, file).unwrap();
        assert_eq!(config.node_id, 7);
        assert_eq!(config.data_dir, PathBuf::from("/b"));
        assert_eq!(config.listen, "127.0.0.1:0");
    }

    #[test]
    fn listener_forms() {
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            ("localhost:9092", Some("localhost:9092"), None),
            ("PLAINTEXT://:9092", Some("0.0.0.0:9092"), None),
            ("CONTROLLER://h:1", None, Some("h:1")),
            (
                "PLAINTEXT://h:1, CONTROLLER://h:2",
                Some("h:1"),
                Some("h:2"),
            ),
        ];
        for (text, kafka, controller) in cases {
            let resolved = resolve_listeners(Some(text), None, &BTreeMap::new()).unwrap();
            assert_eq!(
                resolved.kafka.map(|l| l.address).as_deref(),
                *kafka,
                "{text}"
            );
            assert_eq!(resolved.controller.as_deref(), *controller, "{text}");
        }
        for bad in [
            "PLAINTEXT://h",
            "h:notaport",
            "://h:1",
            "PLAINTEXT://h:1,PLAINTEXT://h:2",
        ] {
            assert!(
                resolve_listeners(Some(bad), None, &BTreeMap::new()).is_err(),
                "{bad}"
            );
        }
    }

    /// Named listeners, the protocol map and the inter-broker listener, as
    /// Kafka validates them: (settings, listeners, advertised) and the
    /// Kafka listener's (name, address, advertised) or a fragment of the
    /// error.
    #[test]
    fn named_listeners_and_the_protocol_map() {
        type Case<'a> = (
            &'a [(&'a str, &'a str)],
            &'a str,
            Option<&'a str>,
            Result<(&'a str, &'a str, Option<&'a str>), &'a str>,
        );
        let map_internal = (
            "listener.security.protocol.map",
            "INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        );
        let cases: &[Case] = &[
            (
                &[],
                "PLAINTEXT://h:1",
                Some("PLAINTEXT://a:1"),
                Ok(("PLAINTEXT", "h:1", Some("a:1"))),
            ),
            (
                &[map_internal],
                "INTERNAL://h:1,CONTROLLER://h:2",
                None,
                Ok(("INTERNAL", "h:1", None)),
            ),
            (
                &[map_internal, ("inter.broker.listener.name", "INTERNAL")],
                "INTERNAL://h:1",
                Some("INTERNAL://a:1"),
                Ok(("INTERNAL", "h:1", Some("a:1"))),
            ),
            (
                &[("controller.listener.names", "RAFT")],
                "PLAINTEXT://h:1,RAFT://h:2",
                None,
                Ok(("PLAINTEXT", "h:1", None)),
            ),
            (
                &[("security.inter.broker.protocol", "PLAINTEXT")],
                "h:1",
                None,
                Ok(("PLAINTEXT", "h:1", None)),
            ),
            (
                &[],
                "INTERNAL://h:1",
                None,
                Err("No security protocol defined for listener INTERNAL"),
            ),
            (&[], "SSL://h:1", None, Err("uses security protocol SSL")),
            (
                &[("listener.security.protocol.map", "X:TLS")],
                "X://h:1",
                None,
                Err("Invalid security protocol"),
            ),
            (
                &[("listener.security.protocol.map", "X")],
                "X://h:1",
                None,
                Err("LISTENER_NAME:SECURITY_PROTOCOL"),
            ),
            (
                &[map_internal],
                "PLAINTEXT://h:1",
                None,
                Err("No security protocol defined for listener PLAINTEXT"),
            ),
            (
                &[],
                "PLAINTEXT://h:1,SASL_PLAINTEXT://h:2",
                None,
                Err("uses security protocol SASL_PLAINTEXT"),
            ),
            (
                &[("listener.security.protocol.map", "A:PLAINTEXT,B:PLAINTEXT")],
                "A://h:1,B://h:2",
                None,
                Err("sluice serves one Kafka listener, got A and B"),
            ),
            (
                &[],
                "PLAINTEXT://h:1",
                Some("OTHER://a:1"),
                Err("must be equal to or a subset"),
            ),
            (
                &[("inter.broker.listener.name", "INTERNAL")],
                "PLAINTEXT://h:1",
                None,
                Err("valid options based on currently configured listeners are PLAINTEXT"),
            ),
            (
                &[
                    ("inter.broker.listener.name", "PLAINTEXT"),
                    ("security.inter.broker.protocol", "PLAINTEXT"),
                ],
                "h:1",
                None,
                Err("Only one of"),
            ),
            (
                &[("security.inter.broker.protocol", "SSL")],
                "h:1",
                None,
                Err("PLAINTEXT only"),
            ),
        ];
        for (settings, listeners, advertised, expected) in cases {
            let got = resolve_listeners(Some(listeners), *advertised, &map(settings));
            match (expected, got) {
                (Ok((name, address, advertised_address)), Ok(resolved)) => {
                    let kafka = resolved.kafka.expect("a Kafka listener");
                    assert_eq!(
                        (kafka.name.as_str(), kafka.address.as_str()),
                        (*name, *address),
                        "{listeners}"
                    );
                    assert_eq!(
                        resolved.advertised.as_deref(),
                        *advertised_address,
                        "{listeners}"
                    );
                }
                (Err(fragment), Err(error)) => {
                    let message = format!("{error:#}");
                    assert!(
                        message.contains(fragment),
                        "{listeners} {settings:?}: {message:?} lacks {fragment:?}"
                    );
                }
                (expected, got) => {
                    panic!("{listeners} {settings:?}: expected {expected:?}, got {got:?}")
                }
            }
        }
        // The name reaches the broker's config.
        let file = map(&[map_internal, ("listeners", "INTERNAL://127.0.0.1:0")]);
        let config = resolve(&ServeArgs::default(), file).unwrap();
        assert_eq!(config.listener_name, "INTERNAL");
        assert_eq!(config.listen, "127.0.0.1:0");
    }

    #[test]
    fn voter_lists() {
        assert_eq!(
            parse_voters("1@a:1, 2@b:2").unwrap(),
            vec![(1, "a:1".to_string()), (2, "b:2".to_string())]
        );
        for bad in ["1a:1", "x@a:1", "1@a", "1@a:1,1@b:2"] {
            assert!(parse_voters(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_are_errors() {
        let cases = [
            map(&[("node.id", "one")]),
            map(&[("log.dirs", "/a,/b")]),
            map(&[("listeners", "nonsense")]),
        ];
        for file in cases {
            assert!(
                resolve(&ServeArgs::default(), file.clone()).is_err(),
                "{file:?}"
            );
        }
    }
}
