//! Any text into the command parser: never a panic, and whatever parses writes back out to
//! the same command.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linechat_protocol::Command;

fuzz_target!(|line: &str| {
    if let Ok(Some(command)) = Command::parse(line) {
        let again = Command::parse(&command.to_string());
        assert_eq!(again, Ok(Some(command)));
    }
});
