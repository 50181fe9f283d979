//! Where a message goes: the bindings servers register (`<prefix>:bindings`, a hash from
//! each handler's stream to its pattern), matched here with the same [`Pattern`] rules every
//! transport uses, and appended checking the bindings' version token.
//!
//! Redis cannot route by wildcard itself, and reading the bindings on every message would
//! double its round trips; so a connection caches them, and checks the token it read them
//! with against the current one: a request's script refuses (`-1`) when it is no longer
//! current (a handler bound since, or Redis came back empty), an event's pipeline reads it
//! after its appends. The caller then reads them again. A token rather than a counter, because a
//! wiped Redis would count from zero again and could meet an old cached number.

use std::collections::HashMap;

use redis::Script;

use crate::Pattern;

/// The names of every key the transport uses, under one prefix.
#[derive(Clone, Debug)]
pub(super) struct Keys {
    prefix: String,
    /// Read by every message sent, so made once.
    version: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
            version: format!("{prefix}:bindings:version"),
        }
    }

    /// The hash of bindings: stream key → pattern.
    pub(super) fn bindings(&self) -> String {
        format!("{}:bindings", self.prefix)
    }

    /// The bindings' version token.
    pub(super) fn version(&self) -> &str {
        &self.version
    }

    /// The stream of one group's handler of events for `pattern`.
    pub(super) fn events(&self, group: &str, pattern: &Pattern) -> String {
        format!("{}:ev:{group}:{pattern}", self.prefix)
    }

    /// The stream of one group's handler of requests for `pattern`.
    pub(super) fn requests(&self, group: &str, pattern: &Pattern) -> String {
        format!("{}:rq:{group}:{pattern}", self.prefix)
    }

    fn is_requests(&self, stream: &str) -> bool {
        stream
            .strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| rest.starts_with(":rq:"))
    }

    /// The key whose presence says a request stream has a live consumer.
    pub(super) fn alive(stream: &str) -> String {
        format!("{stream}:alive")
    }

    /// The stream of dead letters.
    pub(super) fn dead(&self) -> String {
        format!("{}:dead", self.prefix)
    }

    /// A connection's list of replies.
    pub(super) fn replies(&self, connection: &str) -> String {
        format!("{}:reply:{connection}", self.prefix)
    }
}

/// The bindings as read at one version.
#[derive(Debug, Default)]
pub(super) struct Routes {
    pub(super) version: String,
    events: Vec<(Pattern, String)>,
    requests: Vec<(Pattern, String)>,
}

impl Routes {
    /// The routes of `bindings` (stream → pattern) read at `version`.
    pub(super) fn new(keys: &Keys, version: String, bindings: HashMap<String, String>) -> Routes {
        let mut routes = Routes {
            version,
            ..Routes::default()
        };
        for (stream, pattern) in bindings {
            let Ok(pattern) = Pattern::handler(&pattern) else {
                continue; // not written by the SDK
            };
            if keys.is_requests(&stream) {
                routes.requests.push((pattern, stream));
            } else {
                routes.events.push((pattern, stream));
            }
        }
        // Most specific first, as a server picks its handler; ties in a stable order.
        routes
            .requests
            .sort_by(|a, b| a.0.specificity(&b.0).then_with(|| a.1.cmp(&b.1)));
        routes
    }

    /// Every event stream `subject` goes to (one per subscribed handler).
    pub(super) fn events(&self, subject: &Pattern) -> Vec<&str> {
        matching(&self.events, subject)
    }

    /// The request streams that could answer `subject`, most specific first.
    pub(super) fn requests(&self, subject: &Pattern) -> Vec<&str> {
        matching(&self.requests, subject)
    }
}

fn matching<'a>(bindings: &'a [(Pattern, String)], subject: &Pattern) -> Vec<&'a str> {
    bindings
        .iter()
        .filter(|(pattern, _)| pattern.matches(subject.as_str()))
        .map(|(_, stream)| stream.as_str())
        .collect()
}

/// Appends a request to the first stream given that has a live consumer (a member of its
/// `:alive` set whose time, Redis's own clock, has not passed), if the version is current. KEYS[1] the version; ARGV: version, frame, reply list, max length,
/// streams... Returns 1, 0 (nobody alive) or -1 (stale).
pub(super) fn append_request() -> Script {
    Script::new(
        r"
        if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return -1 end
        local t = redis.call('TIME')
        local now = t[1] * 1000 + math.floor(t[2] / 1000)
        for i = 5, #ARGV do
          if redis.call('ZCOUNT', ARGV[i] .. ':alive', now, '+inf') > 0 then
            redis.call('XADD', ARGV[i], 'MAXLEN', '~', ARGV[4], '*', 'm', ARGV[2], 'r', ARGV[3])
            return 1
          end
        end
        return 0
        ",
    )
}

/// Marks consumer ARGV[1] of a request stream alive for ARGV[2] ms more, on Redis's clock,
/// and forgets consumers whose time passed. KEYS[1] the stream's `:alive` set.
pub(super) fn keep_alive() -> Script {
    Script::new(
        r"
        local t = redis.call('TIME')
        local now = t[1] * 1000 + math.floor(t[2] / 1000)
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
        redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        return 1
        ",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_go_to_every_match_and_requests_to_the_most_specific_first() {
        let keys = Keys::new("t");
        let p = |s: &str| Pattern::handler(s).expect("pattern");
        let bindings = HashMap::from([
            (keys.events("a", &p("order.*")), "order.*".to_owned()),
            (
                keys.events("b", &p("order.placed")),
                "order.placed".to_owned(),
            ),
            (keys.events("c", &p("user.#")), "user.#".to_owned()),
            (keys.requests("a", &p("user.#")), "user.#".to_owned()),
            (
                keys.requests("b", &p("user.create")),
                "user.create".to_owned(),
            ),
        ]);
        let routes = Routes::new(&keys, "v1".into(), bindings);
        let subject = Pattern::message("order.placed").expect("subject");
        let mut events = routes.events(&subject);
        events.sort_unstable();
        assert_eq!(events, ["t:ev:a:order.*", "t:ev:b:order.placed"]);
        let subject = Pattern::message("user.create").expect("subject");
        assert_eq!(
            routes.requests(&subject),
            ["t:rq:b:user.create", "t:rq:a:user.#"]
        );
        assert!(routes
            .requests(&Pattern::message("x").expect("subject"))
            .is_empty());
    }
}
