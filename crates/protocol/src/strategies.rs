//! proptest strategies shared by the tests of commands and replies.

use proptest::prelude::*;

use super::name::Name;

/// Any valid name.
pub fn name() -> impl Strategy<Value = Name> {
    "[A-Za-z0-9_-]{1,32}".prop_map(|raw| Name::parse(&raw).unwrap())
}

/// Free text as the server relays it: no control or invisible characters (the command
/// parser refuses them), any other character, runs of spaces common, 1 to 39 characters.
pub fn free_text() -> impl Strategy<Value = String> {
    let char = prop_oneof![
        3 => any::<char>().prop_filter("no control or invisible characters", |c| {
            !c.is_control() && !super::command::is_invisible(*c)
        }),
        1 => Just(' '),
    ];
    proptest::collection::vec(char, 1..40).prop_map(|chars| chars.into_iter().collect())
}
