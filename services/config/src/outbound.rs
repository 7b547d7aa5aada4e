//! A tenant file's outbound settings read into `callgrid-numbers`' types (issue 18): the
//! region, class policy, numbers, blocklist, backup numbers and trunk settings.
//!
//! One reading serves both the cross-field checks (which report every problem with its field
//! path) and [`crate::to_setup`] (which must not fail on a file trusted from the log: what
//! cannot be read is left out, so a broken setting calls out less, never more).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use callgrid_domain::{
    CallerIdFrom as DomainCallerIdFrom, OutboundSetup, TrunkRegister, TrunkSetup,
};
use callgrid_numbers::{
    Blocklist, CarrierId, CarrierTable, ClassPolicy, Normalizer, NumberError, NumberKind as Kind,
    OutboundNumber, OutboundNumbers, TrunkChoice, E164,
};

use crate::model::{CallerIdFrom, HostPort, NumberKind, TenantFile, Trunk};
use crate::schema::{did_you_mean, quote, Seg};

/// Problems found, with their field paths.
pub(crate) type Problems = Vec<(Vec<Seg>, String)>;

fn key(k: &str) -> Seg {
    Seg::Key(k.to_owned())
}

/// Reads the outbound settings of `t`, pushing every problem onto `problems`. Always gives a
/// setup: what could not be read is left out of it.
pub(crate) fn read(t: &TenantFile, problems: &mut Problems) -> OutboundSetup {
    let trunks = trunks(t, problems);
    let normalizer = match Normalizer::new(&t.region) {
        Ok(n) => n,
        Err(e) => {
            problems.push((vec![key("region")], e.to_string()));
            // nothing is read with a region that is not one: no number calls out
            return OutboundSetup {
                trunks,
                ..OutboundSetup::none()
            };
        }
    };
    let emergency_trunk = t.emergency_trunk().map(str::to_owned);
    if let Some(id) = &t.outbound.emergency_trunk {
        if !t.trunks.iter().any(|k| k.id == *id) {
            problems.push((
                vec![key("outbound"), key("emergency_trunk")],
                unknown_trunk(t, id),
            ));
        }
    }
    let policy = ClassPolicy::new(t.outbound.classes.iter().copied(), emergency_trunk);
    let carriers = CarrierTable::vietnam();
    let numbers = Numbers::read(t, &normalizer, &carriers, problems);
    let mut blocklist = Blocklist::new();
    for (i, entry) in t.blocklist.iter().enumerate() {
        if let Err(e) = blocklist.add(&normalizer, entry) {
            let reason = match e {
                NumberError::BlocklistEntry { reason, .. } => reason,
                other => other.to_string(),
            };
            problems.push((
                vec![key("blocklist"), Seg::Index(i)],
                format!("cannot block {}: {reason}", quote(entry)),
            ));
        }
    }
    OutboundSetup {
        normalizer,
        policy,
        carriers,
        numbers: numbers.numbers,
        blocklist,
        backup_numbers: numbers.backups,
        recorded: numbers.recorded,
        trunks,
    }
}

/// The trunks' outbound settings: registration (needs the account), caller id (`account`
/// needs a username), cost in thousandths.
fn trunks(t: &TenantFile, problems: &mut Problems) -> Vec<TrunkSetup> {
    t.trunks
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let at = |fields: &[&str]| {
                let mut path = vec![key("trunks"), Seg::Index(i)];
                path.extend(fields.iter().map(|f| key(f)));
                path
            };
            let register = k.register.as_ref().and_then(|r| {
                let has_secret = k.password.is_some() || k.password_enc.is_some();
                if k.username.is_none() || !has_secret {
                    problems.push((
                        at(&["register"]),
                        "registering needs the trunk's account: give username and password"
                            .to_owned(),
                    ));
                }
                let registrar = match &r.registrar {
                    Some(written) => match registrar(written) {
                        Ok(hp) => hp,
                        Err(reason) => {
                            problems.push((
                                at(&["register", "registrar"]),
                                format!("{}: {reason}", quote(written)),
                            ));
                            return None;
                        }
                    },
                    // the address is checked with the other trunk rules (check.rs)
                    None => k.host_port()?,
                };
                Some(TrunkRegister {
                    registrar: Arc::from(registrar.to_string()),
                    expires_s: r.expires_seconds,
                })
            });
            if k.caller_id.from == CallerIdFrom::Account && k.username.is_none() {
                problems.push((
                    at(&["caller_id", "from"]),
                    "account puts the trunk's username in From, and this trunk has none".to_owned(),
                ));
            }
            let cost_per_minute_milli = k.cost_per_minute.as_ref().and_then(|c| {
                let milli = c.milli();
                if milli.is_none() {
                    problems.push((
                        at(&["cost_per_minute"]),
                        format!(
                            "expected a price with at most three decimals (thousandths of the \
                             currency unit), got {}",
                            c.as_number()
                        ),
                    ));
                }
                milli
            });
            TrunkSetup {
                id: Arc::from(k.id.as_str()),
                register,
                caller_id_from: match k.caller_id.from {
                    CallerIdFrom::Number => DomainCallerIdFrom::Number,
                    CallerIdFrom::Account => DomainCallerIdFrom::Account,
                },
                p_asserted_identity: k.caller_id.p_asserted_identity,
                keepalive_ms: u64::from(k.keepalive_seconds) * 1000,
                cost_per_minute_milli,
            }
        })
        .collect()
}

/// A registrar as written: `sip:HOST[:PORT]` or `HOST[:PORT]`.
pub(crate) fn registrar(written: &str) -> Result<HostPort, String> {
    let lower = written.to_ascii_lowercase();
    if lower.starts_with("sips:") {
        return Err("sips needs TLS, and trunks use udp or tcp".to_owned());
    }
    let hostport = if lower.starts_with("sip:") {
        &written[4..]
    } else {
        written
    };
    if hostport.contains(['@', ';', '?']) {
        return Err(
            "a registrar is sip:HOST[:PORT] or HOST[:PORT], without user or parameters".to_owned(),
        );
    }
    HostPort::parse(hostport)
}

fn unknown_trunk(t: &TenantFile, id: &str) -> String {
    let mut message = format!("unknown trunk {}", quote(id));
    if t.trunks.is_empty() {
        message.push_str(" (the tenant has no trunks)");
    } else if let Some(best) = did_you_mean(id, t.trunks.iter().map(|k| k.id.as_str())) {
        message.push_str(&format!(" (did you mean {}?)", quote(best)));
    }
    message
}

/// The numbers read for outbound calling.
struct Numbers {
    numbers: OutboundNumbers,
    backups: BTreeMap<Arc<str>, E164>,
    recorded: BTreeSet<E164>,
    /// The numbers' forwards to their backup numbers (N6), in file order.
    routes: Vec<BackupRoute>,
}

/// Where a number's calls go when the platform cannot take them (N6): the edge forwards them
/// to the backup number on the number's trunks, as a carrier's forward on unreachable would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupRoute {
    /// The tenant's number, as written in the file (the edge's and the router's key).
    pub number: String,
    /// The backup number, E.164.
    pub destination: String,
    /// The number presented: the one dialled, in E.164 (as written when it reads as none).
    pub presented: String,
    /// The trunks to try, in the number's order (`trunks`: as listed; else every trunk of
    /// the tenant, cheapest first).
    pub trunks: Vec<String>,
}

/// The forwards of `t`'s numbers that have a backup number (N6); none when the region or a
/// backup number cannot be read (`check` reports why).
pub fn backup_routes(t: &TenantFile) -> Vec<BackupRoute> {
    let Ok(normalizer) = Normalizer::new(&t.region) else {
        return Vec::new();
    };
    Numbers::read(t, &normalizer, &CarrierTable::vietnam(), &mut Vec::new()).routes
}

impl Numbers {
    fn read(
        t: &TenantFile,
        normalizer: &Normalizer,
        carriers: &CarrierTable,
        problems: &mut Problems,
    ) -> Numbers {
        let before = problems.len();
        let known_carriers = carriers.carriers();
        let group_ids: HashSet<&str> = t
            .queues
            .iter()
            .map(|q| q.id.as_str())
            .chain(t.groups.iter().map(|g| g.id.as_str()))
            .collect();
        let costs: HashMap<&str, Option<u64>> = t
            .trunks
            .iter()
            .map(|k| {
                (
                    k.id.as_str(),
                    k.cost_per_minute.as_ref().and_then(|c| c.milli()),
                )
            })
            .collect();
        let e164: Vec<Result<E164, NumberError>> = t
            .numbers
            .iter()
            .map(|n| normalizer.normalize(&n.number))
            .collect();
        let own: HashMap<&E164, usize> = e164
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().ok().map(|n| (n, i)))
            .collect();

        let mut list: Vec<OutboundNumber> = Vec::new();
        // index in `list` -> index in the file
        let mut file_index: Vec<usize> = Vec::new();
        let mut backups = BTreeMap::new();
        let mut routes = Vec::new();
        let mut recorded = BTreeSet::new();
        for (i, n) in t.numbers.iter().enumerate() {
            let at = |fields: &[Seg]| {
                let mut path = vec![key("numbers"), Seg::Index(i)];
                path.extend_from_slice(fields);
                path
            };
            let given = n.outbound_fields();
            if n.kind == NumberKind::Virtual {
                for field in &given {
                    problems.push((
                        at(&[key(field)]),
                        "a virtual number cannot call out (N1): leave this out, or make the \
                         number kind: carrier"
                            .to_owned(),
                    ));
                }
            } else if let Err(e) = &e164[i] {
                let reason = match e {
                    NumberError::Invalid { reason, .. } => reason.clone(),
                    other => other.to_string(),
                };
                for field in &given {
                    problems.push((
                        at(&[key(field)]),
                        format!(
                            "{} cannot call out: it is not a valid public number in {} ({reason})",
                            quote(&n.number),
                            normalizer.region()
                        ),
                    ));
                }
            }
            let can_call_out = n.kind == NumberKind::Carrier && e164[i].is_ok();
            if can_call_out && n.outbound == Some(true) && t.trunks.is_empty() {
                problems.push((
                    at(&[key("outbound")]),
                    "the tenant has no trunk to call out on".to_owned(),
                ));
            }
            let carrier = n.carrier.as_deref().and_then(|c| {
                let id = known(c, &known_carriers);
                if id.is_none() {
                    problems.push((at(&[key("carrier")]), unknown_carrier(c, &known_carriers)));
                }
                id
            });
            let callee_carriers = n.callee_carriers.as_ref().map(|list| {
                list.iter()
                    .enumerate()
                    .filter_map(|(j, c)| {
                        let id = known(c, &known_carriers);
                        if id.is_none() {
                            problems.push((
                                at(&[key("callee_carriers"), Seg::Index(j)]),
                                unknown_carrier(c, &known_carriers),
                            ));
                        }
                        id
                    })
                    .collect::<Vec<_>>()
            });
            if let Some(groups) = &n.outbound_groups {
                for (j, g) in groups.iter().enumerate() {
                    if !group_ids.contains(g.as_str()) {
                        problems.push((
                            at(&[key("outbound_groups"), Seg::Index(j)]),
                            format!("unknown queue or group {}", quote(g)),
                        ));
                    }
                }
            }
            let trunks: Vec<TrunkChoice> = match &n.trunks {
                Some(ids) => ids
                    .iter()
                    .enumerate()
                    .filter_map(|(j, id)| match costs.get(id.as_str()) {
                        Some(cost) => Some(TrunkChoice {
                            trunk: id.clone(),
                            priority: Some(j as u32),
                            cost_per_minute_milli: *cost,
                        }),
                        None => {
                            problems
                                .push((at(&[key("trunks"), Seg::Index(j)]), unknown_trunk(t, id)));
                            None
                        }
                    })
                    .collect(),
                None => t.trunks.iter().map(|k| trunk_choice(k, &costs)).collect(),
            };
            if let Some(backup) = &n.backup_number {
                match normalizer.normalize(backup) {
                    Ok(b) => match own.get(&b) {
                        Some(&j) => problems.push((
                            at(&[key("backup_number")]),
                            format!(
                                "{} is the tenant's own numbers[{j}], which the platform serves \
                                 too; a backup number is elsewhere (e.g. a supervisor's mobile)",
                                quote(backup)
                            ),
                        )),
                        None => {
                            // the trunks in the order a call out on this number takes them
                            let mut order = OutboundNumber::new(b.clone(), Kind::Carrier);
                            order.trunks = trunks.clone();
                            routes.push(BackupRoute {
                                number: n.number.clone(),
                                destination: b.to_string(),
                                presented: e164[i]
                                    .as_ref()
                                    .map_or_else(|_| n.number.clone(), ToString::to_string),
                                trunks: order
                                    .trunk_order()
                                    .into_iter()
                                    .map(|t| t.trunk.clone())
                                    .collect(),
                            });
                            backups.insert(Arc::from(n.number.as_str()), b);
                        }
                    },
                    Err(e) => problems.push((at(&[key("backup_number")]), e.to_string())),
                }
            }
            let Ok(number) = &e164[i] else {
                continue;
            };
            if n.record_outbound && n.kind == NumberKind::Carrier {
                recorded.insert(number.clone());
            }
            list.push(OutboundNumber {
                number: number.clone(),
                kind: match n.kind {
                    NumberKind::Carrier => Kind::Carrier,
                    NumberKind::Virtual => Kind::Virtual,
                },
                outbound: n.outbound_wanted(),
                carrier,
                callee_carriers,
                allowed_groups: n.outbound_groups.clone(),
                short_code: n.short_code.clone(),
                short_prefix: n.short_prefix.clone(),
                trunks,
            });
            file_index.push(i);
        }

        let fallback = t.outbound.fallback_number.as_ref().and_then(|f| {
            let at = vec![key("outbound"), key("fallback_number")];
            match normalizer.normalize(f) {
                Ok(number) if own.contains_key(&number) => Some(number),
                Ok(_) => {
                    problems.push((
                        at,
                        format!("{} is not one of the tenant's numbers", quote(f)),
                    ));
                    None
                }
                Err(e) => {
                    problems.push((at, e.to_string()));
                    None
                }
            }
        });
        let empty = || OutboundNumbers::new(Vec::new(), None).expect("no numbers, no conflict");
        // the numbers crate's rules (short codes and prefixes told apart, each number once,
        // the fallback a carrier number) run on numbers that passed the rules above; its
        // first problem is reported with the file's field path
        let numbers = if problems.len() == before {
            match OutboundNumbers::new(list, fallback.as_ref()) {
                Ok(numbers) => numbers,
                Err(e) => {
                    problems.push(numbers_problem(e, &file_index));
                    empty()
                }
            }
        } else {
            empty()
        };
        Numbers {
            numbers,
            backups,
            recorded,
            routes,
        }
    }
}

fn trunk_choice(k: &Trunk, costs: &HashMap<&str, Option<u64>>) -> TrunkChoice {
    TrunkChoice {
        trunk: k.id.clone(),
        priority: None,
        cost_per_minute_milli: costs.get(k.id.as_str()).copied().flatten(),
    }
}

fn known(id: &str, carriers: &[&CarrierId]) -> Option<CarrierId> {
    carriers
        .iter()
        .find(|c| c.as_str() == id)
        .map(|c| (*c).clone())
}

fn unknown_carrier(id: &str, carriers: &[&CarrierId]) -> String {
    let names: Vec<&str> = carriers.iter().map(|c| c.as_str()).collect();
    let mut message = format!(
        "unknown carrier {}, expected one of: {}",
        quote(id),
        names.join(", ")
    );
    if let Some(best) = did_you_mean(id, names.iter().copied()) {
        message.push_str(&format!(" (did you mean {}?)", quote(best)));
    }
    message
}

/// An error of [`OutboundNumbers::new`] as a problem of the file: its `numbers[k]` (an
/// index among the numbers that have an E.164 form) become the file's `numbers[i]`, its
/// field names those of the file.
fn numbers_problem(e: NumberError, file_index: &[usize]) -> (Vec<Seg>, String) {
    let NumberError::NumbersConfig { field, reason } = e else {
        return (vec![key("numbers")], e.to_string());
    };
    let reason = renumber(&reason, file_index);
    if field == "fallback" {
        return (vec![key("outbound"), key("fallback_number")], reason);
    }
    let mut path = vec![key("numbers")];
    let parsed = field
        .strip_prefix("numbers[")
        .and_then(|rest| rest.split_once("]."))
        .and_then(|(k, rest)| Some((k.parse::<usize>().ok()?, rest)));
    let Some((k, rest)) = parsed else {
        return (path, format!("{field}: {reason}"));
    };
    path.push(Seg::Index(file_index.get(k).copied().unwrap_or(k)));
    match rest {
        "allowed_groups" => path.push(key("outbound_groups")),
        other => match other
            .strip_prefix("trunks[")
            .and_then(|r| r.split_once(']'))
            .and_then(|(j, _)| j.parse::<usize>().ok())
        {
            Some(j) => path.extend([key("trunks"), Seg::Index(j)]),
            None => path.push(key(other)),
        },
    }
    (path, reason)
}

/// `text` with every `numbers[k]` turned into `numbers[file_index[k]]`.
fn renumber(text: &str, file_index: &[usize]) -> String {
    const OPEN: &str = "numbers[";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(OPEN) {
        let (before, after) = rest.split_at(at + OPEN.len());
        out.push_str(before);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(k) if after[digits..].starts_with(']') => {
                out.push_str(&file_index.get(k).copied().unwrap_or(k).to_string());
            }
            _ => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_of_the_numbers_crate_become_the_files() {
        let map = [0, 2, 5];
        assert_eq!(
            renumber("801 and numbers[1]'s 80 cannot be told apart", &map),
            "801 and numbers[2]'s 80 cannot be told apart"
        );
        assert_eq!(
            renumber("numbers[2] numbers[x] numbers[", &map),
            "numbers[5] numbers[x] numbers["
        );
        let e = NumberError::NumbersConfig {
            field: "numbers[2].trunks[1].trunk".into(),
            reason: "a is trunks[0] already".into(),
        };
        let (path, reason) = numbers_problem(e, &map);
        assert_eq!(crate::schema::render_path(&path), "numbers[5].trunks[1]");
        assert_eq!(reason, "a is trunks[0] already");
        let e = NumberError::NumbersConfig {
            field: "numbers[1].allowed_groups".into(),
            reason: "empty".into(),
        };
        let (path, _) = numbers_problem(e, &map);
        assert_eq!(
            crate::schema::render_path(&path),
            "numbers[2].outbound_groups"
        );
        let e = NumberError::NumbersConfig {
            field: "fallback".into(),
            reason: "+842873000300 is virtual and cannot call out".into(),
        };
        let (path, _) = numbers_problem(e, &map);
        assert_eq!(
            crate::schema::render_path(&path),
            "outbound.fallback_number"
        );
    }

    #[test]
    fn registrars_are_sip_uris_or_host_and_port() {
        assert_eq!(
            registrar("sip:Reg.Carrier.example").map(|h| h.to_string()),
            Ok("reg.carrier.example:5060".to_owned())
        );
        assert_eq!(
            registrar("203.0.113.5:5080").map(|h| h.to_string()),
            Ok("203.0.113.5:5080".to_owned())
        );
        assert!(registrar("sips:reg.example").unwrap_err().contains("TLS"));
        assert!(registrar("sip:user@reg.example")
            .unwrap_err()
            .contains("without user"));
        assert!(registrar("reg.example:0").unwrap_err().contains("port 0"));
    }
}
