//! COMMAND (no subcommand, COUNT, LIST [FILTERBY], INFO, DOCS, GETKEYS, GETKEYSANDFLAGS, HELP):
//! the table's commands as Redis 7 describes them, with each one's tips, key specs and
//! subcommands from `spec`.

use super::spec;
use super::table::{CommandSpec, COMMANDS};
use super::{arity_error, eq_ignore_case, eq_subcommand, find, help, unknown_subcommand, Ctx};
use crate::glob;
use crate::protocol::reply;

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
    "HELP",
    "    Prints this help.",
];

pub fn command(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    if args.len() == 1 {
        return all_info(ctx.out, ctx.client.resp);
    }
    let sub = args[1];
    if eq_subcommand(sub, "count") {
        if args.len() != 2 {
            return arity_error(ctx.out, "command|count");
        }
        reply::integer(ctx.out, COMMANDS.len() as i64);
    } else if eq_subcommand(sub, "list") {
        list(ctx, &args[2..]);
    } else if eq_subcommand(sub, "info") {
        if args.len() == 2 {
            return all_info(ctx.out, ctx.client.resp);
        }
        reply::array_len(ctx.out, args.len() - 2);
        for name in &args[2..] {
            info_by_name(ctx.out, ctx.client.resp, name);
        }
    } else if eq_subcommand(sub, "docs") {
        let specs: Vec<&CommandSpec> = if args.len() == 2 {
            COMMANDS.iter().collect()
        } else {
            args[2..]
                .iter()
                .filter_map(|n| find(n).map(|i| &COMMANDS[i]))
                .collect()
        };
        let resp = ctx.client.resp;
        reply::map_len(ctx.out, resp, specs.len());
        for c in specs {
            docs(ctx.out, resp, c);
        }
    } else if eq_subcommand(sub, "getkeys") || eq_subcommand(sub, "getkeysandflags") {
        let with_flags = eq_subcommand(sub, "getkeysandflags");
        if args.len() < 4 {
            let name = if with_flags {
                "command|getkeysandflags"
            } else {
                "command|getkeys"
            };
            return arity_error(ctx.out, name);
        }
        getkeys(ctx, &args[2..], with_flags);
    } else if eq_subcommand(sub, "help") {
        if args.len() != 2 {
            return arity_error(ctx.out, "command|help");
        }
        help(ctx.out, COMMAND_HELP);
    } else {
        unknown_subcommand(ctx.out, sub, "command");
    }
}

fn all_info(out: &mut Vec<u8>, resp: u8) {
    reply::array_len(out, COMMANDS.len());
    for (i, c) in COMMANDS.iter().enumerate() {
        info(out, resp, i, c);
    }
}

/// COMMAND INFO of one name: a command, or `container|sub`; a null for an unknown one (as
/// Redis 7 answers, a null bulk in RESP2).
fn info_by_name(out: &mut Vec<u8>, resp: u8, name: &[u8]) {
    if let Some(i) = find(name) {
        return info(out, resp, i, &COMMANDS[i]);
    }
    let sub = name
        .iter()
        .position(|&b| b == b'|')
        .and_then(|bar| Some((find(&name[..bar])?, &name[bar + 1..])))
        .and_then(|(i, sub)| spec::subcommand(i, sub));
    match sub {
        Some(s) => spec::encode_subcommand(out, resp, s),
        None => reply::null(out, resp),
    }
}

/// One COMMAND INFO entry: Redis 7's ten fields (flags and ACL categories are sets in RESP3).
fn info(out: &mut Vec<u8>, resp: u8, index: usize, c: &CommandSpec) {
    reply::array_len(out, 10);
    reply::bulk(out, c.name.as_bytes());
    reply::integer(out, i64::from(c.arity));
    let flags: Vec<&str> = c.flag_names().collect();
    reply::set_len(out, resp, flags.len());
    for f in flags {
        reply::simple(out, f.as_bytes());
    }
    reply::integer(out, i64::from(c.keys.0));
    reply::integer(out, i64::from(c.keys.1));
    reply::integer(out, i64::from(c.keys.2));
    let categories: Vec<&str> = c.acl_categories().collect();
    reply::set_len(out, resp, categories.len());
    for cat in categories {
        reply::simple(out, format!("@{cat}").as_bytes());
    }
    let d = spec::doc(index);
    spec::encode_tail(out, resp, d.tips, d.key_specs, d.subcommands);
}

/// One COMMAND DOCS entry: name, then a map of summary, since, group.
fn docs(out: &mut Vec<u8>, resp: u8, c: &CommandSpec) {
    reply::bulk(out, c.name.as_bytes());
    reply::map_len(out, resp, 3);
    reply::bulk(out, b"summary");
    reply::bulk(out, c.summary.as_bytes());
    reply::bulk(out, b"since");
    reply::bulk(out, c.since.as_bytes());
    reply::bulk(out, b"group");
    reply::bulk(out, c.group.as_bytes());
}

/// Every command's and subcommand's name with its ACL categories (without the `@`).
fn names_and_categories() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut v = Vec::new();
    for (i, c) in COMMANDS.iter().enumerate() {
        v.push((c.name, c.acl_categories().collect()));
        for s in spec::doc(i).subcommands {
            let cats = s
                .categories
                .iter()
                .map(|c| c.trim_start_matches('@'))
                .collect();
            v.push((s.name, cats));
        }
    }
    v
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]: commands and
/// subcommands (`container|sub`), as Redis 7 lists them.
fn list(ctx: &mut Ctx<'_>, filter: &[&[u8]]) {
    let all = names_and_categories();
    let names: Vec<&str> = match filter {
        [] => all.iter().map(|(n, _)| *n).collect(),
        [by, kind, value] if eq_ignore_case(by, "filterby") => {
            if eq_ignore_case(kind, "module") {
                // flin has no modules.
                Vec::new()
            } else if eq_ignore_case(kind, "aclcat") {
                all.iter()
                    .filter(|(_, cats)| {
                        cats.iter()
                            .any(|c| value.eq_ignore_ascii_case(c.as_bytes()))
                    })
                    .map(|(n, _)| *n)
                    .collect()
            } else if eq_ignore_case(kind, "pattern") {
                all.iter()
                    .filter(|(n, _)| glob::matches(value, n.as_bytes(), true))
                    .map(|(n, _)| *n)
                    .collect()
            } else {
                return super::syntax_error(ctx.out);
            }
        }
        _ => return super::syntax_error(ctx.out),
    };
    reply::array_len(ctx.out, names.len());
    for n in names {
        reply::bulk(ctx.out, n.as_bytes());
    }
}

/// COMMAND GETKEYS / GETKEYSANDFLAGS <command line>.
fn getkeys(ctx: &mut Ctx<'_>, line: &[&[u8]], with_flags: bool) {
    let keys = match spec::keys_with_flags(line) {
        Ok(k) => k,
        Err(e) => return reply::err(ctx.out, e.message()),
    };
    reply::array_len(ctx.out, keys.len());
    for (key, flags) in keys {
        if with_flags {
            reply::array_len(ctx.out, 2);
            reply::bulk(ctx.out, key);
            reply::set_len(ctx.out, ctx.client.resp, flags.len());
            for f in flags {
                reply::simple(ctx.out, f.as_bytes());
            }
        } else {
            reply::bulk(ctx.out, key);
        }
    }
}
