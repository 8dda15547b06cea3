//! What COMMAND INFO says beyond the table's columns: each command's tips and key specs
//! (Redis 7's description of where the keys are and what the command does to them), and the
//! subcommands of the containers (CLIENT, CONFIG, COMMAND, OBJECT, MEMORY, SLOWLOG, LATENCY).
//! The data (`spec_data.rs`) is generated from redis-server's own COMMAND INFO; this file
//! encodes it and finds keys with it (COMMAND GETKEYS).

use super::spec_data::DOCS;
use super::table::{CommandSpec, COMMANDS};
use super::{eq_ignore_case, eq_subcommand, find};
use crate::protocol::reply;

/// Where the first key is. Redis also searches for a keyword; none of flin's commands does
/// (the generator refuses such a spec).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Begin {
    Index(i64),
}

/// Which keys follow the first one. Redis also reads a key count from an argument; none of
/// flin's commands does.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Find {
    Range {
        lastkey: i64,
        keystep: i64,
        limit: i64,
    },
}

/// One key spec.
#[derive(Debug)]
pub(crate) struct KeySpec {
    pub flags: &'static [&'static str],
    pub begin: Begin,
    pub find: Find,
    pub notes: Option<&'static str>,
}

/// A subcommand, as COMMAND INFO describes it.
#[derive(Debug)]
pub(crate) struct Subcommand {
    /// `container|sub`.
    pub name: &'static str,
    pub arity: i64,
    pub flags: &'static [&'static str],
    pub keys: (i64, i64, i64),
    pub categories: &'static [&'static str],
    pub tips: &'static [&'static str],
    pub key_specs: &'static [KeySpec],
}

/// One command's generated description.
#[derive(Debug)]
pub(crate) struct CommandDoc {
    pub name: &'static str,
    pub tips: &'static [&'static str],
    pub key_specs: &'static [KeySpec],
    pub subcommands: &'static [Subcommand],
}

/// The generated description of the command at `index` in the table.
pub(crate) fn doc(index: usize) -> &'static CommandDoc {
    debug_assert_eq!(DOCS[index].name, COMMANDS[index].name);
    &DOCS[index]
}

/// The subcommand `sub` of the command at `index`, if it is a container that has it.
pub(crate) fn subcommand(index: usize, sub: &[u8]) -> Option<&'static Subcommand> {
    DOCS[index].subcommands.iter().find(|s| {
        let short = s.name.split_once('|').map_or(s.name, |(_, short)| short);
        eq_subcommand(sub, short)
    })
}

/// Per-command statistics keep one slot per command and one per subcommand (Redis reports
/// `cmdstat_client|id`, not `cmdstat_client`): the commands' slots first, in table order, then
/// each container's subcommands.
pub(crate) fn stat_slots() -> usize {
    COMMANDS.len() + sub_offsets()[COMMANDS.len()]
}

/// Where each command's subcommands start among the subcommand slots (one more entry: the
/// total).
fn sub_offsets() -> &'static [usize] {
    static OFFSETS: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    OFFSETS.get_or_init(|| {
        let mut v = Vec::with_capacity(DOCS.len() + 1);
        let mut n = 0;
        for d in DOCS {
            v.push(n);
            n += d.subcommands.len();
        }
        v.push(n);
        v
    })
}

/// The statistics slot of the command line `args`, whose command is at `index`: its
/// subcommand's slot for a container (when the subcommand is one flin describes), else its own.
#[inline]
pub(crate) fn stat_slot(index: usize, args: &[&[u8]]) -> usize {
    let subs = DOCS[index].subcommands;
    if subs.is_empty() || args.len() < 2 {
        return index;
    }
    match subs.iter().position(|s| {
        let short = s.name.split_once('|').map_or(s.name, |(_, short)| short);
        eq_subcommand(args[1], short)
    }) {
        Some(j) => COMMANDS.len() + sub_offsets()[index] + j,
        None => index,
    }
}

/// The subcommand whose statistics slot is `slot`, if it is a subcommand's.
pub(crate) fn slot_subcommand(slot: usize) -> Option<&'static Subcommand> {
    let sub = slot.checked_sub(COMMANDS.len())?;
    let offsets = sub_offsets();
    let index = offsets.partition_point(|&o| o <= sub) - 1;
    DOCS[index].subcommands.get(sub - offsets[index])
}

/// The name of statistics slot `slot`: `get`, or `client|id`.
pub(crate) fn stat_name(slot: usize) -> &'static str {
    match slot_subcommand(slot) {
        Some(s) => s.name,
        None => COMMANDS[slot].name,
    }
}

/// COMMAND INFO's tips, key specs and subcommands fields of a command. In RESP3 the tips and
/// key specs are sets, and so is an empty subcommand list (Redis 7.0's `addReplySetLen`);
/// subcommands, when there are some, stay an array.
pub(crate) fn encode_tail(
    out: &mut Vec<u8>,
    resp: u8,
    tips: &[&str],
    specs: &[KeySpec],
    subs: &[Subcommand],
) {
    reply::set_len(out, resp, tips.len());
    for t in tips {
        reply::bulk(out, t.as_bytes());
    }
    reply::set_len(out, resp, specs.len());
    for s in specs {
        encode_key_spec(out, resp, s);
    }
    if subs.is_empty() {
        return reply::set_len(out, resp, 0);
    }
    reply::array_len(out, subs.len());
    for s in subs {
        encode_subcommand(out, resp, s);
    }
}

fn encode_key_spec(out: &mut Vec<u8>, resp: u8, s: &KeySpec) {
    reply::map_len(out, resp, 3 + usize::from(s.notes.is_some()));
    if let Some(notes) = s.notes {
        reply::bulk(out, b"notes");
        reply::bulk(out, notes.as_bytes());
    }
    reply::bulk(out, b"flags");
    reply::set_len(out, resp, s.flags.len());
    for f in s.flags {
        reply::simple(out, f.as_bytes());
    }
    reply::bulk(out, b"begin_search");
    reply::map_len(out, resp, 2);
    reply::bulk(out, b"type");
    let Begin::Index(i) = s.begin;
    reply::bulk(out, b"index");
    reply::bulk(out, b"spec");
    reply::map_len(out, resp, 1);
    reply::bulk(out, b"index");
    reply::integer(out, i);
    reply::bulk(out, b"find_keys");
    reply::map_len(out, resp, 2);
    reply::bulk(out, b"type");
    let Find::Range {
        lastkey,
        keystep,
        limit,
    } = s.find;
    reply::bulk(out, b"range");
    let fields: [(&[u8], i64); 3] = [
        (b"lastkey", lastkey),
        (b"keystep", keystep),
        (b"limit", limit),
    ];
    reply::bulk(out, b"spec");
    reply::map_len(out, resp, fields.len());
    for (name, v) in fields {
        reply::bulk(out, name);
        reply::integer(out, v);
    }
}

pub(crate) fn encode_subcommand(out: &mut Vec<u8>, resp: u8, s: &Subcommand) {
    reply::array_len(out, 10);
    reply::bulk(out, s.name.as_bytes());
    reply::integer(out, s.arity);
    reply::set_len(out, resp, s.flags.len());
    for f in s.flags {
        reply::simple(out, f.as_bytes());
    }
    reply::integer(out, s.keys.0);
    reply::integer(out, s.keys.1);
    reply::integer(out, s.keys.2);
    reply::set_len(out, resp, s.categories.len());
    for c in s.categories {
        reply::simple(out, c.as_bytes());
    }
    encode_tail(out, resp, s.tips, s.key_specs, &[]);
}

/// Why COMMAND GETKEYS found no keys, in Redis's words.
pub(crate) enum GetKeysError {
    NoCommand,
    NoKeys,
    Arity,
    BadArguments,
}

impl GetKeysError {
    pub(crate) fn message(&self) -> &'static str {
        match self {
            GetKeysError::NoCommand => "Invalid command specified",
            GetKeysError::NoKeys => "The command has no key arguments",
            GetKeysError::Arity => "Invalid number of arguments specified for command",
            GetKeysError::BadArguments => "Invalid arguments specified for command",
        }
    }
}

/// A key of a command line, with the flags of the key spec that found it.
pub(crate) type FlaggedKey<'a> = (&'a [u8], &'static [&'static str]);

/// The keys of the command line `args`, as Redis's `getKeysUsingKeySpecs` finds them.
pub(crate) fn keys_with_flags<'a>(args: &[&'a [u8]]) -> Result<Vec<FlaggedKey<'a>>, GetKeysError> {
    let index = find(args[0]).ok_or(GetKeysError::NoCommand)?;
    let spec: &CommandSpec = &COMMANDS[index];
    let doc = doc(index);
    let (arity, specs) = if doc.subcommands.is_empty() {
        (i64::from(spec.arity), doc.key_specs)
    } else {
        let sub = args
            .get(1)
            .and_then(|s| subcommand(index, s))
            .ok_or(GetKeysError::NoCommand)?;
        (sub.arity, sub.key_specs)
    };
    if specs.is_empty() {
        return Err(GetKeysError::NoKeys);
    }
    let argc = args.len() as i64;
    if (arity > 0 && arity != argc) || argc < -arity {
        return Err(GetKeysError::Arity);
    }
    let mut keys = Vec::new();
    for s in specs {
        let Begin::Index(first) = s.begin;
        let Find::Range {
            lastkey,
            keystep,
            limit,
        } = s.find;
        let last = if lastkey >= 0 {
            first + lastkey
        } else if limit == 0 {
            argc + lastkey
        } else {
            first + ((argc - first) / limit + lastkey)
        };
        let mut i = first;
        // Past the arguments: a command of variable arity given too few (Redis skips them).
        while i <= last && keystep > 0 && i < argc {
            keys.push((args[i as usize], s.flags));
            i += keystep;
        }
    }
    if keys.is_empty() {
        return Err(GetKeysError::BadArguments);
    }
    if let Some(flags) = variable_flags(spec.name, args) {
        keys[0].1 = flags;
    }
    Ok(keys)
}

/// The key flags of the commands whose specs say `variable_flags`, as Redis's `setGetKeys`
/// and `bitfieldGetKeys` decide them from the arguments.
fn variable_flags(name: &str, args: &[&[u8]]) -> Option<&'static [&'static str]> {
    const WRITES_READS: &[&str] = &["RW", "access", "update"];
    match name {
        "set" => Some(if args.iter().skip(3).any(|a| eq_ignore_case(a, "get")) {
            WRITES_READS
        } else {
            &["OW", "update"]
        }),
        "bitfield" => {
            let mut i = 2;
            while i < args.len() {
                let more = args.len() - i - 1;
                if eq_ignore_case(args[i], "get") && more >= 2 {
                    i += 3;
                } else if eq_ignore_case(args[i], "overflow") && more >= 1 {
                    i += 2;
                } else {
                    return Some(WRITES_READS);
                }
            }
            Some(&["RO", "access"])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_data_follows_the_table() {
        assert_eq!(
            DOCS.len(),
            COMMANDS.len(),
            "run server/scripts/gen-command-specs.py"
        );
        for (d, c) in DOCS.iter().zip(COMMANDS) {
            assert_eq!(d.name, c.name, "run server/scripts/gen-command-specs.py");
        }
    }

    fn keys(args: &[&'static [u8]]) -> Vec<&'static [u8]> {
        keys_with_flags(args)
            .map(|k| k.into_iter().map(|(k, _)| k).collect())
            .unwrap_or_default()
    }

    #[test]
    fn every_subcommand_has_a_statistics_slot() {
        let client = find(b"client").unwrap();
        let id = stat_slot(client, &[b"client", b"ID"]);
        assert_eq!(stat_name(id), "client|id");
        assert_eq!(stat_slot(client, &[b"client", b"nosuch"]), client);
        assert_eq!(stat_name(find(b"get").unwrap()), "get");
        let mut names = std::collections::HashSet::new();
        for slot in 0..stat_slots() {
            assert!(names.insert(stat_name(slot)), "slot {slot}");
        }
        assert!(names.contains("latency|histogram") && names.contains("object|freq"));
    }

    #[test]
    fn key_specs_find_the_keys() {
        assert_eq!(keys(&[b"get", b"k"]), [b"k"]);
        assert_eq!(keys(&[b"mset", b"a", b"1", b"b", b"2"]), [b"a", b"b"]);
        assert_eq!(keys(&[b"mset", b"a", b"1", b"b"]), [b"a", b"b"]);
        assert_eq!(
            keys(&[b"bitop", b"and", b"d", b"x", b"y"]),
            [b"d", b"x", b"y"]
        );
        assert_eq!(keys(&[b"lcs", b"a", b"b", b"LEN"]), [b"a", b"b"]);
        assert_eq!(keys(&[b"object", b"encoding", b"k"]), [b"k"]);
        assert_eq!(keys(&[b"memory", b"usage", b"k", b"samples", b"5"]), [b"k"]);
        assert!(matches!(
            keys_with_flags(&[b"client", b"kill"]),
            Err(GetKeysError::NoKeys)
        ));
        assert!(matches!(
            keys_with_flags(&[b"get"]),
            Err(GetKeysError::Arity)
        ));
        assert!(matches!(
            keys_with_flags(&[b"nosuch", b"k"]),
            Err(GetKeysError::NoCommand)
        ));
        assert!(matches!(
            keys_with_flags(&[b"object", b"nosuch", b"k"]),
            Err(GetKeysError::NoCommand)
        ));
    }
}
