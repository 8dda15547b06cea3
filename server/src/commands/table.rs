//! The command table: name, arity, flags, key positions and handler of every command flin
//! supports. Used for dispatch, arity errors, and COMMAND / COMMAND DOCS output, so those
//! list exactly what flin does.

use super::{
    bitfield, bits, command, config, connection, databases, dump, keys, latency, lcs, memory,
    monitor, multi, object, pubsub, replication, reset, server, strings, Ctx,
};

pub type Handler = fn(&mut Ctx<'_>, &[&[u8]]);

/// Flag bits.
pub const WRITE: u32 = 1;
pub const READONLY: u32 = 1 << 1;
pub const FAST: u32 = 1 << 2;
/// Allowed before AUTH.
pub const NO_AUTH: u32 = 1 << 3;
pub const DENYOOM: u32 = 1 << 4;
pub const ADMIN: u32 = 1 << 5;
pub const LOADING: u32 = 1 << 6;
pub const STALE: u32 = 1 << 7;
pub const NOSCRIPT: u32 = 1 << 8;
pub const NO_ASYNC_LOADING: u32 = 1 << 9;
pub const NO_MULTI: u32 = 1 << 10;
pub const ALLOW_BUSY: u32 = 1 << 11;
pub const SKIP_SLOWLOG: u32 = 1 << 12;
/// A Pub/Sub command (Redis's `pubsub` flag).
pub const PUBSUB: u32 = 1 << 13;

/// In the order Redis lists them.
const FLAG_NAMES: &[(u32, &str)] = &[
    (WRITE, "write"),
    (READONLY, "readonly"),
    (DENYOOM, "denyoom"),
    (ADMIN, "admin"),
    (PUBSUB, "pubsub"),
    (NOSCRIPT, "noscript"),
    (LOADING, "loading"),
    (STALE, "stale"),
    (SKIP_SLOWLOG, "skip_slowlog"),
    (FAST, "fast"),
    (NO_AUTH, "no_auth"),
    (NO_ASYNC_LOADING, "no_async_loading"),
    (NO_MULTI, "no_multi"),
    (ALLOW_BUSY, "allow_busy"),
];

/// One command of the table: its name, arity, flags, key positions, COMMAND DOCS text and
/// handler.
pub struct CommandSpec {
    /// Lowercase, as Redis's `fullname`.
    pub(crate) name: &'static str,
    /// Redis convention: `n` exactly n arguments (name included), `-n` at least n.
    pub(crate) arity: i32,
    pub(crate) flags: u32,
    /// First key, last key (-1: the last argument), step; 0, 0, 0 for no keys.
    pub(crate) keys: (i32, i32, i32),
    pub(crate) group: &'static str,
    pub(crate) since: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) handler: Handler,
}

impl CommandSpec {
    pub(crate) fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let a = i64::from(self.arity);
        if a >= 0 {
            argc == a
        } else {
            argc >= -a
        }
    }

    pub(crate) fn no_auth(&self) -> bool {
        self.flags & NO_AUTH != 0
    }

    /// ACL categories, as Redis 7 derives them (`setImplicitACLCategories` plus the group's
    /// own), in Redis's category order, without the `@`.
    pub(crate) fn acl_categories(&self) -> impl Iterator<Item = &'static str> + '_ {
        let f = self.flags;
        let dangerous_keyspace = matches!(self.name, "keys" | "flushall" | "flushdb" | "swapdb");
        let container = matches!(
            self.name,
            "client" | "config" | "object" | "memory" | "slowlog" | "latency" | "pubsub"
        );
        // Not admin-flagged, but in Redis's @admin and @dangerous categories.
        let admin_category = matches!(self.name, "lastsave" | "role");
        [
            (
                (self.group == "generic" && !container && self.name != "wait")
                    || dangerous_keyspace
                    || self.name == "dbsize",
                "keyspace",
            ),
            (f & READONLY != 0, "read"),
            (f & WRITE != 0, "write"),
            (self.group == "string", "string"),
            (self.group == "bitmap", "bitmap"),
            (self.group == "pubsub" && !container, "pubsub"),
            (f & ADMIN != 0 || admin_category, "admin"),
            (f & FAST != 0, "fast"),
            (f & FAST == 0, "slow"),
            (
                f & ADMIN != 0
                    || admin_category
                    || dangerous_keyspace
                    || matches!(self.name, "info" | "restore"),
                "dangerous",
            ),
            (
                (self.group == "connection" && !container)
                    || matches!(self.name, "command" | "wait"),
                "connection",
            ),
            (self.group == "transactions", "transaction"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| name)
    }

    pub(crate) fn flag_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        FLAG_NAMES
            .iter()
            .filter(move |(bit, _)| self.flags & bit != 0)
            .map(|(_, n)| *n)
    }
}

macro_rules! cmd {
    ($name:literal, $arity:expr, $flags:expr, $keys:expr, $group:literal, $since:literal, $summary:literal, $handler:path) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: $keys,
            group: $group,
            since: $since,
            summary: $summary,
            handler: $handler,
        }
    };
}

const NOKEYS: (i32, i32, i32) = (0, 0, 0);
const KEY1: (i32, i32, i32) = (1, 1, 1);
const ALLKEYS: (i32, i32, i32) = (1, -1, 1);

/// Every command, sorted by name (COMMAND's lists; a test keeps it sorted). [`find`] looks
/// names up through [`NAME_INDEX`].
pub static COMMANDS: &[CommandSpec] = &[
    cmd!("append", 3, WRITE | DENYOOM | FAST, KEY1, "string", "2.0.0", "Appends a string to the value of a key. Creates the key if it doesn't exist.", strings::append),
    cmd!("auth", -2, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY, NOKEYS, "connection", "1.0.0", "Authenticates the connection.", connection::auth),
    cmd!("bgsave", -1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING, NOKEYS, "server", "1.0.0", "Asynchronously saves the database(s) to disk.", server::bgsave),
    cmd!("bitcount", -2, READONLY, KEY1, "bitmap", "2.6.0", "Count set bits in a string", bits::bitcount),
    cmd!("bitfield", -2, WRITE | DENYOOM, KEY1, "bitmap", "3.2.0", "Perform arbitrary bitfield integer operations on strings", bitfield::bitfield),
    cmd!("bitfield_ro", -2, READONLY | FAST, KEY1, "bitmap", "6.0.0", "Perform arbitrary bitfield integer operations on strings. Read-only variant of BITFIELD", bitfield::bitfield_ro),
    cmd!("bitop", -4, WRITE | DENYOOM, (2, -1, 1), "bitmap", "2.6.0", "Perform bitwise operations between strings", bits::bitop),
    cmd!("bitpos", -3, READONLY, KEY1, "bitmap", "2.8.7", "Find first bit set or clear in a string", bits::bitpos),
    cmd!("client", -2, 0, NOKEYS, "connection", "2.4.0", "A container for client connection commands.", connection::client),
    cmd!("command", -1, LOADING | STALE, NOKEYS, "server", "2.8.13", "Returns detailed information about all commands.", command::command),
    cmd!("config", -2, 0, NOKEYS, "server", "2.0.0", "A container for server configuration commands.", config::config),
    cmd!("copy", -3, WRITE | DENYOOM, (1, 2, 1), "generic", "6.2.0", "Copy a key", databases::copy),
    cmd!("dbsize", 1, READONLY | FAST, NOKEYS, "server", "1.0.0", "Returns the number of keys in the database.", databases::dbsize),
    cmd!("decr", 2, WRITE | DENYOOM | FAST, KEY1, "string", "1.0.0", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", strings::decr),
    cmd!("decrby", 3, WRITE | DENYOOM | FAST, KEY1, "string", "1.0.0", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.", strings::decrby),
    cmd!("del", -2, WRITE, ALLKEYS, "generic", "1.0.0", "Deletes one or more keys.", keys::del),
    cmd!("discard", 1, NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY, NOKEYS, "transactions", "2.0.0", "Discard all commands issued after MULTI", multi::discard),
    cmd!("dump", 2, READONLY, KEY1, "generic", "2.6.0", "Return a serialized version of the value stored at the specified key.", dump::dump),
    cmd!("echo", 2, LOADING | STALE | FAST, NOKEYS, "connection", "1.0.0", "Returns the given string.", connection::echo),
    cmd!("exec", 1, NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG, NOKEYS, "transactions", "1.2.0", "Execute all commands issued after MULTI", multi::exec),
    cmd!("exists", -2, READONLY | FAST, ALLKEYS, "generic", "1.0.0", "Determines whether one or more keys exist.", keys::exists),
    cmd!("expire", -3, WRITE | FAST, KEY1, "generic", "1.0.0", "Sets the expiration time of a key in seconds.", keys::expire),
    cmd!("expireat", -3, WRITE | FAST, KEY1, "generic", "1.2.0", "Sets the expiration time of a key to a Unix timestamp.", keys::expireat),
    cmd!("expiretime", 2, READONLY | FAST, KEY1, "generic", "7.0.0", "Returns the expiration time of a key as a Unix timestamp.", keys::expiretime),
    cmd!("flushall", -1, WRITE, NOKEYS, "server", "1.0.0", "Removes all keys from all databases.", keys::flushall),
    cmd!("flushdb", -1, WRITE, NOKEYS, "server", "1.0.0", "Remove all keys from the current database.", databases::flushdb),
    cmd!("get", 2, READONLY | FAST, KEY1, "string", "1.0.0", "Returns the string value of a key.", strings::get),
    cmd!("getbit", 3, READONLY | FAST, KEY1, "bitmap", "2.2.0", "Returns the bit value at offset in the string value stored at key", bits::getbit),
    cmd!("getdel", 2, WRITE | FAST, KEY1, "string", "6.2.0", "Returns the string value of a key after deleting the key.", strings::getdel),
    cmd!("getex", -2, WRITE | FAST, KEY1, "string", "6.2.0", "Returns the string value of a key after setting its expiration time.", strings::getex),
    cmd!("getrange", 4, READONLY, KEY1, "string", "2.4.0", "Returns a substring of the string stored at a key.", strings::getrange),
    cmd!("getset", 3, WRITE | DENYOOM | FAST, KEY1, "string", "1.0.0", "Returns the previous string value of a key after setting it to a new value.", strings::getset),
    cmd!("hello", -1, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY, NOKEYS, "connection", "6.0.0", "Handshakes with the Redis server.", connection::hello),
    cmd!("incr", 2, WRITE | DENYOOM | FAST, KEY1, "string", "1.0.0", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", strings::incr),
    cmd!("incrby", 3, WRITE | DENYOOM | FAST, KEY1, "string", "1.0.0", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.", strings::incrby),
    cmd!("incrbyfloat", 3, WRITE | DENYOOM | FAST, KEY1, "string", "2.6.0", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.", strings::incrbyfloat),
    cmd!("info", -1, LOADING | STALE, NOKEYS, "server", "1.0.0", "Returns information and statistics about the server.", server::info),
    cmd!("keys", 2, READONLY, NOKEYS, "generic", "1.0.0", "Returns all key names that match a pattern.", keys::keys),
    cmd!("lastsave", 1, LOADING | STALE | FAST, NOKEYS, "server", "1.0.0", "Returns the Unix timestamp of the last successful save to disk.", server::lastsave),
    cmd!("latency", -2, 0, NOKEYS, "server", "2.8.13", "A container for latency diagnostics commands", latency::latency),
    cmd!("lcs", -3, READONLY, (1, 2, 1), "string", "7.0.0", "Find longest common substring", lcs::lcs),
    cmd!("memory", -2, 0, NOKEYS, "server", "4.0.0", "A container for memory diagnostics commands", memory::memory),
    cmd!("mget", -2, READONLY | FAST, ALLKEYS, "string", "1.0.0", "Atomically returns the string values of one or more keys.", strings::mget),
    cmd!("monitor", 1, ADMIN | NOSCRIPT | LOADING | STALE, NOKEYS, "server", "1.0.0", "Listen for all requests received by the server in real time", monitor::monitor),
    cmd!("move", 3, WRITE | FAST, KEY1, "generic", "1.0.0", "Move a key to another database", databases::move_),
    cmd!("mset", -3, WRITE | DENYOOM, (1, -1, 2), "string", "1.0.1", "Atomically creates or modifies the string values of one or more keys.", strings::mset),
    cmd!("msetnx", -3, WRITE | DENYOOM, (1, -1, 2), "string", "1.0.1", "Atomically modifies the string values of one or more keys only when all keys don't exist.", strings::msetnx),
    cmd!("multi", 1, NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY, NOKEYS, "transactions", "1.2.0", "Mark the start of a transaction block", multi::multi),
    cmd!("object", -2, 0, NOKEYS, "generic", "2.2.3", "A container for object introspection commands", object::object),
    cmd!("persist", 2, WRITE | FAST, KEY1, "generic", "2.2.0", "Removes the expiration time of a key.", keys::persist),
    cmd!("pexpire", -3, WRITE | FAST, KEY1, "generic", "2.6.0", "Sets the expiration time of a key in milliseconds.", keys::pexpire),
    cmd!("pexpireat", -3, WRITE | FAST, KEY1, "generic", "2.6.0", "Sets the expiration time of a key to a Unix milliseconds timestamp.", keys::pexpireat),
    cmd!("pexpiretime", 2, READONLY | FAST, KEY1, "generic", "7.0.0", "Returns the expiration time of a key as a Unix milliseconds timestamp.", keys::pexpiretime),
    cmd!("ping", -1, FAST, NOKEYS, "connection", "1.0.0", "Returns the server's liveliness response.", connection::ping),
    cmd!("psetex", 4, WRITE | DENYOOM, KEY1, "string", "2.6.0", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.", strings::psetex),
    cmd!("psubscribe", -2, PUBSUB | NOSCRIPT | LOADING | STALE, NOKEYS, "pubsub", "2.0.0", "Listen for messages published to channels matching the given patterns", pubsub::psubscribe),
    cmd!("psync", -3, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, NOKEYS, "server", "2.8.0", "An internal command used in replication", replication::sync),
    cmd!("pttl", 2, READONLY | FAST, KEY1, "generic", "2.6.0", "Returns the expiration time in milliseconds of a key.", keys::pttl),
    cmd!("publish", 3, PUBSUB | LOADING | STALE | FAST, NOKEYS, "pubsub", "2.0.0", "Post a message to a channel", pubsub::publish),
    cmd!("pubsub", -2, 0, NOKEYS, "pubsub", "2.8.0", "A container for Pub/Sub commands", pubsub::pubsub),
    cmd!("punsubscribe", -1, PUBSUB | NOSCRIPT | LOADING | STALE, NOKEYS, "pubsub", "2.0.0", "Stop listening for messages posted to channels matching the given patterns", pubsub::punsubscribe),
    cmd!("quit", -1, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY, NOKEYS, "connection", "1.0.0", "Closes the connection.", connection::quit),
    cmd!("randomkey", 1, READONLY, NOKEYS, "generic", "1.0.0", "Returns a random key name from the database.", keys::randomkey),
    cmd!("rename", 3, WRITE, (1, 2, 1), "generic", "1.0.0", "Renames a key and overwrites the destination.", keys::rename),
    cmd!("renamenx", 3, WRITE | FAST, (1, 2, 1), "generic", "1.0.0", "Renames a key only when the target key name doesn't exist.", keys::renamenx),
    cmd!("replconf", -1, ADMIN | NOSCRIPT | LOADING | STALE | ALLOW_BUSY, NOKEYS, "server", "3.0.0", "An internal command for configuring the replication stream", replication::replconf),
    cmd!("replicaof", 3, ADMIN | NOSCRIPT | STALE | NO_ASYNC_LOADING, NOKEYS, "server", "5.0.0", "Configures a server as replica of another, or promotes it to a master.", replication::replicaof),
    cmd!("reset", 1, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY, NOKEYS, "connection", "6.2.0", "Reset the connection", reset::reset),
    cmd!("restore", -4, WRITE | DENYOOM, KEY1, "generic", "2.6.0", "Create a key using the provided serialized value, previously obtained using DUMP.", dump::restore),
    cmd!("role", 1, NOSCRIPT | LOADING | STALE | FAST, NOKEYS, "server", "2.8.12", "Returns the replication role.", server::role),
    cmd!("save", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, NOKEYS, "server", "1.0.0", "Synchronously saves the database(s) to disk.", server::save),
    cmd!("scan", -2, READONLY, NOKEYS, "generic", "2.8.0", "Iterates over the key names in the database.", keys::scan),
    cmd!("select", 2, LOADING | STALE | FAST, NOKEYS, "connection", "1.0.0", "Changes the selected database.", databases::select),
    cmd!("set", -3, WRITE | DENYOOM, KEY1, "string", "1.0.0", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.", strings::set),
    cmd!("setbit", 4, WRITE | DENYOOM, KEY1, "bitmap", "2.2.0", "Sets or clears the bit at offset in the string value stored at key", bits::setbit),
    cmd!("setex", 4, WRITE | DENYOOM, KEY1, "string", "2.0.0", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.", strings::setex),
    cmd!("setnx", 3, WRITE | DENYOOM | FAST, KEY1, "string", "1.0.0", "Set the string value of a key only when the key doesn't exist.", strings::setnx),
    cmd!("setrange", 4, WRITE | DENYOOM, KEY1, "string", "2.2.0", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.", strings::setrange),
    cmd!("shutdown", -1, ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY, NOKEYS, "server", "1.0.0", "Synchronously saves the database(s) to disk and shuts down the Redis server.", server::shutdown),
    cmd!("slaveof", 3, ADMIN | NOSCRIPT | STALE | NO_ASYNC_LOADING, NOKEYS, "server", "1.0.0", "Sets a Redis server as a replica of another, or promotes it to being a master.", replication::replicaof),
    cmd!("slowlog", -2, 0, NOKEYS, "server", "2.2.12", "A container for slow log commands", latency::slowlog),
    cmd!("spublish", 3, PUBSUB | LOADING | STALE | FAST, KEY1, "pubsub", "7.0.0", "Post a message to a shard channel", pubsub::spublish),
    cmd!("ssubscribe", -2, PUBSUB | NOSCRIPT | LOADING | STALE, ALLKEYS, "pubsub", "7.0.0", "Listen for messages published to the given shard channels", pubsub::ssubscribe),
    cmd!("strlen", 2, READONLY | FAST, KEY1, "string", "2.2.0", "Returns the length of a string value.", strings::strlen),
    cmd!("subscribe", -2, PUBSUB | NOSCRIPT | LOADING | STALE, NOKEYS, "pubsub", "2.0.0", "Listen for messages published to the given channels", pubsub::subscribe),
    cmd!("substr", 4, READONLY, KEY1, "string", "1.0.0", "Returns a substring from a string value.", strings::getrange),
    cmd!("sunsubscribe", -1, PUBSUB | NOSCRIPT | LOADING | STALE, ALLKEYS, "pubsub", "7.0.0", "Stop listening for messages posted to the given shard channels", pubsub::sunsubscribe),
    cmd!("swapdb", 3, WRITE | FAST, NOKEYS, "server", "4.0.0", "Swaps two Redis databases", databases::swapdb),
    cmd!("sync", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, NOKEYS, "server", "1.0.0", "An internal command used in replication", replication::sync),
    cmd!("time", 1, LOADING | STALE | FAST, NOKEYS, "server", "2.6.0", "Returns the server time.", server::time),
    cmd!("touch", -2, READONLY | FAST, ALLKEYS, "generic", "3.2.1", "Returns the number of existing keys out of those specified after updating the time they were last accessed.", keys::exists),
    cmd!("ttl", 2, READONLY | FAST, KEY1, "generic", "1.0.0", "Returns the expiration time in seconds of a key.", keys::ttl),
    cmd!("type", 2, READONLY | FAST, KEY1, "generic", "1.0.0", "Determines the type of value stored at a key.", keys::type_),
    cmd!("unlink", -2, WRITE | FAST, ALLKEYS, "generic", "4.0.0", "Asynchronously deletes one or more keys.", keys::del),
    cmd!("unsubscribe", -1, PUBSUB | NOSCRIPT | LOADING | STALE, NOKEYS, "pubsub", "2.0.0", "Stop listening for messages posted to the given channels", pubsub::unsubscribe),
    cmd!("unwatch", 1, NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY, NOKEYS, "transactions", "2.2.0", "Forget about all watched keys", multi::unwatch),
    cmd!("wait", 3, NOSCRIPT, NOKEYS, "generic", "3.0.0", "Wait for the synchronous replication of all the write commands sent in the context of the current connection", replication::wait),
    cmd!("watch", -2, NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY, ALLKEYS, "transactions", "2.2.0", "Watch the given keys to determine execution of the MULTI/EXEC block", multi::watch),
];

/// Longest command name, for the case-folding buffer.
const NAME_LEN_MAX: usize = 16;

/// Finds a command by name, ignoring ASCII case. No allocation.
#[inline]
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    find(name).map(|i| &COMMANDS[i])
}

/// The index in [`COMMANDS`] of the command named `name`, ignoring ASCII case: what a client's
/// entry remembers as its last command. No allocation.
#[inline]
pub fn find(name: &[u8]) -> Option<usize> {
    if name.len() > NAME_LEN_MAX {
        return None;
    }
    let mut lower = [0u8; NAME_LEN_MAX];
    let lower = &mut lower[..name.len()];
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    // The two commands that matter most, before the search.
    match &*lower {
        b"get" => return Some(GET),
        b"set" => return Some(SET),
        _ => {}
    }
    // A hash probe and one comparison: a binary search over the table took about eight
    // `memcmp`s, a tenth of a worker's time under MULTI/SET/SET/EXEC (each queued command
    // is looked up again by EXEC).
    let mut slot = name_slot(lower);
    loop {
        let i = NAME_INDEX[slot];
        if i == NAME_INDEX_EMPTY {
            return None;
        }
        if COMMANDS[usize::from(i)].name.as_bytes() == &*lower {
            return Some(usize::from(i));
        }
        slot = (slot + 1) % NAME_INDEX_SLOTS;
    }
}

/// Slots of [`NAME_INDEX`]: more than four per command, so a probe rarely goes past one.
const NAME_INDEX_SLOTS: usize = 1024;
const NAME_INDEX_EMPTY: u16 = u16::MAX;
const _: () = assert!(NAME_INDEX_SLOTS > 4 * COMMANDS.len());

/// An open-addressed table (linear probing) of indexes into [`COMMANDS`], by the FNV-1a hash
/// of the lowercase name; built at compile time.
static NAME_INDEX: [u16; NAME_INDEX_SLOTS] = {
    let mut table = [NAME_INDEX_EMPTY; NAME_INDEX_SLOTS];
    let mut i = 0;
    while i < COMMANDS.len() {
        let mut slot = name_slot(COMMANDS[i].name.as_bytes());
        while table[slot] != NAME_INDEX_EMPTY {
            slot = (slot + 1) % NAME_INDEX_SLOTS;
        }
        table[slot] = i as u16;
        i += 1;
    }
    table
};

/// Where the probe for `name` (lowercase) starts in [`NAME_INDEX`].
const fn name_slot(name: &[u8]) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < name.len() {
        h ^= name[i] as u32;
        h = h.wrapping_mul(0x0100_0193);
        i += 1;
    }
    h as usize % NAME_INDEX_SLOTS
}

// A client's entry keeps its last command's index in a u16, u16::MAX meaning none.
const _: () = assert!(COMMANDS.len() < u16::MAX as usize);

const GET: usize = index_of("get");
const SET: usize = index_of("set");

/// The position of `name` in [`COMMANDS`], found at compile time (a missing name fails the
/// build).
const fn index_of(name: &str) -> usize {
    let mut i = 0;
    while i < COMMANDS.len() {
        let (a, b) = (COMMANDS[i].name.as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("no such command in the table")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_fast_paths_point_right() {
        for w in COMMANDS.windows(2) {
            assert!(w[0].name < w[1].name, "{} before {}", w[0].name, w[1].name);
        }
        assert_eq!(COMMANDS[GET].name, "get");
        assert_eq!(COMMANDS[SET].name, "set");
        assert!(COMMANDS.iter().all(|c| c.name.len() <= NAME_LEN_MAX));
    }

    #[test]
    fn find_gives_the_index_lookup_gives_the_entry() {
        for (i, c) in COMMANDS.iter().enumerate() {
            assert_eq!(find(c.name.to_ascii_uppercase().as_bytes()), Some(i));
            assert!(std::ptr::eq(lookup(c.name.as_bytes()).unwrap(), c));
        }
        assert_eq!(find(b"nosuch"), None);
    }

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(lookup(b"GeT").unwrap().name, "get");
        assert_eq!(lookup(b"INCRBYFLOAT").unwrap().name, "incrbyfloat");
        assert!(lookup(b"lpush").is_none());
        assert!(lookup(b"").is_none());
        assert!(lookup(&[b'a'; 40]).is_none());
    }

    #[test]
    fn acl_categories_as_redis() {
        let cats = |n: &str| {
            lookup(n.as_bytes())
                .unwrap()
                .acl_categories()
                .collect::<Vec<_>>()
        };
        // COMMAND INFO of redis-server 7.0.15.
        assert_eq!(cats("get"), ["read", "string", "fast"]);
        assert_eq!(cats("set"), ["write", "string", "slow"]);
        assert_eq!(cats("del"), ["keyspace", "write", "slow"]);
        assert_eq!(cats("expire"), ["keyspace", "write", "fast"]);
        assert_eq!(cats("scan"), ["keyspace", "read", "slow"]);
        assert_eq!(cats("ping"), ["fast", "connection"]);
        assert_eq!(cats("auth"), ["fast", "connection"]);
        assert_eq!(cats("info"), ["slow", "dangerous"]);
        assert_eq!(cats("client"), ["slow"]);
        assert_eq!(cats("command"), ["slow", "connection"]);
        assert_eq!(cats("incrbyfloat"), ["write", "string", "fast"]);
    }

    #[test]
    fn arity() {
        let get = lookup(b"get").unwrap();
        assert!(get.arity_ok(2) && !get.arity_ok(1) && !get.arity_ok(3));
        let set = lookup(b"set").unwrap();
        assert!(set.arity_ok(3) && set.arity_ok(9) && !set.arity_ok(2));
    }
}
