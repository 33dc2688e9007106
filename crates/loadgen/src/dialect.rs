//! The protocols the load generator speaks: the same workload against linechat, IRC servers
//! and Redis pub/sub.

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dialect {
    /// linechat's own line protocol.
    Linechat,
    /// Plain IRC (RFC 1459 registration, JOIN, PRIVMSG). Lines end with LF alone, which
    /// every server accepts: ircd-hybrid 8 stops parsing a client's input when a CR LF pair
    /// is split across two reads, and then closes a fast sender for "Excess Flood" even
    /// when flood protection is off for it.
    Irc,
    /// Redis pub/sub with inline commands: SUBSCRIBE and PUBLISH (replies are RESP).
    Redis,
}

/// What a connection sends in one set-up step, and the reply that ends the step.
pub struct Step {
    pub send: String,
    /// A line containing this ends the step...
    pub until: &'static str,
    /// ... if it also contains this. An IRC server may end another channel's names first:
    /// linechat's IRC port puts every user in `#global` at registration, and that `366`
    /// must not pass for the end of a later `JOIN`.
    pub naming: Option<String>,
}

impl Step {
    /// Whether the server's `line` ends this step.
    pub fn ends_at(&self, line: &[u8]) -> bool {
        let has = |needle: &str| memchr::memmem::find(line, needle.as_bytes()).is_some();
        has(self.until) && self.naming.as_deref().is_none_or(has)
    }
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Linechat => "linechat",
            Dialect::Irc => "irc",
            Dialect::Redis => "redis",
        }
    }

    /// Whether a sender is itself a room member (and so receives the others' messages).
    pub fn senders_are_members(self) -> bool {
        self != Dialect::Redis
    }

    /// Lines that log `name` in; `None` when the protocol has no login.
    pub fn login(self, name: &str) -> Option<Step> {
        match self {
            Dialect::Linechat => Some(Step {
                send: format!("NICK {name}\n"),
                until: "OK NICK",
                naming: None,
            }),
            // RPL_WELCOME (001) ends the registration; the MOTD that follows is read and
            // dropped like any other line.
            Dialect::Irc => Some(Step {
                send: format!("NICK {name}\nUSER {name} 0 * :{name}\n"),
                until: " 001 ",
                naming: None,
            }),
            Dialect::Redis => None,
        }
    }

    /// Lines that put a logged-in connection in `room`; `first` creates it where that matters.
    pub fn join(self, room: &str, first: bool) -> Step {
        match self {
            Dialect::Linechat if first => Step {
                send: format!("CR {room}\n"),
                until: "OK CR",
                naming: None,
            },
            Dialect::Linechat => Step {
                send: format!("JR {room}\n"),
                until: "OK JR",
                naming: None,
            },
            // RPL_ENDOFNAMES (366) for this channel is the last reply to a JOIN.
            Dialect::Irc => Step {
                send: format!("JOIN #{room}\n"),
                until: " 366 ",
                naming: Some(format!(" #{room} ")),
            },
            Dialect::Redis => Step {
                send: format!("SUBSCRIBE {room}\r\n"),
                until: "subscribe",
                naming: None,
            },
        }
    }

    /// Lines that end a connection politely.
    pub fn quit(self) -> &'static [u8] {
        match self {
            Dialect::Linechat => b"QUIT\n",
            Dialect::Irc => b"QUIT :bye\n",
            Dialect::Redis => b"QUIT\r\n",
        }
    }

    /// A message to everyone in `room`.
    pub fn room_message(self, room: &str, payload: &str, out: &mut Vec<u8>) {
        let parts: [&[u8]; 4] = match self {
            Dialect::Linechat => [b"RM ", room.as_bytes(), b" ", b"\n"],
            Dialect::Irc => [b"PRIVMSG #", room.as_bytes(), b" :", b"\n"],
            Dialect::Redis => [b"PUBLISH ", room.as_bytes(), b" ", b"\r\n"],
        };
        out.extend_from_slice(parts[0]);
        out.extend_from_slice(parts[1]);
        out.extend_from_slice(parts[2]);
        out.extend_from_slice(payload.as_bytes());
        out.extend_from_slice(parts[3]);
    }

    /// A private message to `to`.
    pub fn private_message(self, to: &str, payload: &str, out: &mut Vec<u8>) {
        let parts: [&[u8]; 3] = match self {
            Dialect::Linechat => [b"PM ", b" ", b"\n"],
            Dialect::Irc => [b"PRIVMSG ", b" :", b"\n"],
            // A channel per receiver stands in for a private conversation.
            Dialect::Redis => [b"PUBLISH ", b" ", b"\r\n"],
        };
        out.extend_from_slice(parts[0]);
        out.extend_from_slice(to.as_bytes());
        out.extend_from_slice(parts[1]);
        out.extend_from_slice(payload.as_bytes());
        out.extend_from_slice(parts[2]);
    }

    /// The answer to a keep-alive probe from the server, if `line` is one: IRC's
    /// `PING :token` and linechat's `PING token` both want the token back in a `PONG`.
    pub fn pong(self, line: &[u8]) -> Option<Vec<u8>> {
        if self == Dialect::Redis {
            return None;
        }
        let rest = line.strip_prefix(b"PING")?;
        if !(rest.is_empty() || rest.starts_with(b" ")) {
            return None;
        }
        let mut pong = b"PONG".to_vec();
        pong.extend_from_slice(rest);
        pong.push(b'\n');
        Some(pong)
    }

    /// Whether `line` reports a failure: linechat's `ERR`, an IRC error numeric (400-599) or
    /// `ERROR` (the server closing the link), a Redis error reply.
    pub fn is_error(self, line: &[u8]) -> bool {
        match self {
            Dialect::Linechat => line.starts_with(b"ERR "),
            Dialect::Irc => {
                if line.starts_with(b"ERROR") {
                    return true;
                }
                // ":server 433 * nick :Nickname is already in use"
                let mut words = line.split(|&b| b == b' ');
                let first = words.next().unwrap_or_default();
                if !first.starts_with(b":") {
                    return false;
                }
                let code = words.next().unwrap_or_default();
                // 422 (ERR_NOMOTD) only says that there is no message of the day.
                code.len() == 3
                    && code.iter().all(u8::is_ascii_digit)
                    && (b'4'..=b'5').contains(&code[0])
                    && code != b"422"
            }
            Dialect::Redis => line.starts_with(b"-"),
        }
    }
}

/// The digits names are written with: no `0`, `1` or `m`, so that no two names look alike
/// to linechat, which refuses a name whose TR39 skeleton matches a taken one's (`o`/`0`,
/// `l`/`1`, `rn`/`m`).
pub const NAME_DIGITS: &[u8] = b"23456789abcdefghijklnopqrstuvwxyz";

/// Short names that every server accepts: at most 9 characters (RFC 1459's nick length,
/// still the default of ngIRCd and ircd-hybrid), starting with a letter. `kind` is one
/// letter, `tag` keeps one run's names apart from another's, `index` is written in base 33
/// ([`NAME_DIGITS`]).
pub fn short_name(kind: char, tag: &str, index: usize) -> String {
    let mut name = String::with_capacity(9);
    name.push(kind);
    name.push_str(tag);
    push_digits(&mut name, index, 1);
    name
}

/// Writes `value` in [`NAME_DIGITS`], with at least `width` digits.
pub fn push_digits(out: &mut String, value: usize, width: usize) {
    let base = NAME_DIGITS.len();
    let mut digits = Vec::new();
    let mut rest = value;
    while rest > 0 || digits.len() < width {
        digits.push(char::from(NAME_DIGITS[rest % base]));
        rest /= base;
    }
    out.extend(digits.iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_within_nine_characters() {
        assert_eq!(short_name('m', "a2b", 0), "ma2b2");
        assert_eq!(short_name('m', "a2b", 32), "ma2bz");
        assert_eq!(short_name('m', "a2b", 33), "ma2b32");
        assert!(short_name('m', "zzz", 33usize.pow(5) - 1).len() <= 9);
    }

    #[test]
    fn no_two_names_look_alike() {
        let key = |name: &str| {
            unicode_security::skeleton(name)
                .collect::<String>()
                .to_lowercase()
        };
        let mut seen = std::collections::HashSet::new();
        for kind in ['m', 'b', 'u'] {
            for index in 0..20_000 {
                let name = short_name(kind, "k2z", index);
                assert!(seen.insert(key(&name)), "{name} looks like an earlier name");
            }
        }
    }

    #[test]
    fn a_join_ends_at_the_end_of_its_own_channels_names() {
        let join = Dialect::Irc.join("be33", false);
        assert!(!join.ends_at(b":vm 366 me332 #global :End of /NAMES list"));
        assert!(!join.ends_at(b":vm 353 me332 = #be33 :me332"));
        assert!(join.ends_at(b":vm 366 me332 #be33 :End of /NAMES list"));
        assert!(Dialect::Linechat.join("be33", true).ends_at(b"OK CR be33"));
    }

    #[test]
    fn pings_are_answered_in_kind() {
        assert_eq!(
            Dialect::Irc.pong(b"PING :irc.local").unwrap(),
            b"PONG :irc.local\n"
        );
        assert_eq!(
            Dialect::Linechat.pong(b"PING idle").unwrap(),
            b"PONG idle\n"
        );
        assert!(Dialect::Linechat.pong(b"PINGS").is_none());
        assert!(Dialect::Redis.pong(b"PING").is_none());
    }

    #[test]
    fn errors_are_recognised() {
        assert!(Dialect::Irc.is_error(b":s 433 * m1 :Nickname is already in use"));
        assert!(Dialect::Irc.is_error(b"ERROR :Closing link"));
        assert!(!Dialect::Irc.is_error(b":s 001 m1 :Welcome"));
        assert!(!Dialect::Irc.is_error(b":s 422 m1 :MOTD File is missing"));
        assert!(!Dialect::Irc.is_error(b":m1!u@h PRIVMSG #b :433 x"));
        assert!(Dialect::Linechat.is_error(b"ERR FLOOD slow down"));
        assert!(Dialect::Redis.is_error(b"-ERR unknown command"));
    }
}
