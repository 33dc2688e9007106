//! Private messages between nodes under load: a burst from several senders of one node to
//! users of another arrives whole, in each sender's order.

use std::collections::HashMap;

use super::{NatsServer, Nodes, users_become};
use crate::support::Client;

/// Messages each sender sends, in one write.
const PER_SENDER: usize = 400;

#[tokio::test]
async fn a_burst_of_private_messages_to_another_node_arrives_whole_and_in_order() {
    let cluster = Nodes::start_on(NatsServer::start(), 2, |settings| {
        settings.flood_lines_per_sec = 0;
    });
    let (a, b) = (cluster.node(0), cluster.node(1));
    let recipients = ["bob", "carl"];
    let mut receiving = Vec::new();
    for name in recipients {
        receiving.push(super::guest(b, name).await);
    }
    let senders = ["s0", "s1", "s2"];
    let mut sending = Vec::new();
    for name in senders {
        sending.push(super::guest(a, name).await);
    }
    for sender in &mut sending {
        users_become(sender, "USERS bob carl s0 s1 s2").await;
    }

    for (s, sender) in sending.iter_mut().enumerate() {
        let burst: String = (0..PER_SENDER)
            .map(|n| format!("PM {} {s}:{n}\n", recipients[n % 2]))
            .collect();
        sender.send_raw(burst.as_bytes()).await;
    }
    for sender in &mut sending {
        for n in 0..PER_SENDER {
            let expected = format!("OK PM {}", recipients[n % 2]);
            assert_eq!(not_a_notice(sender).await, expected);
        }
    }
    for (r, recipient) in receiving.iter_mut().enumerate() {
        // The next message expected from each sender: every other one of theirs.
        let mut next: HashMap<String, usize> = HashMap::new();
        let mut received = 0;
        while received < senders.len() * PER_SENDER / 2 {
            let line = not_a_notice(recipient).await;
            let (from, text) = line
                .strip_prefix("PM ")
                .and_then(|rest| rest.split_once(' '))
                .unwrap_or_else(|| panic!("not a private message: {line:?}"));
            let (s, n) = text.split_once(':').expect("sender:number");
            assert_eq!(from, senders[s.parse::<usize>().unwrap()]);
            let expected = next.entry(from.to_owned()).or_insert(r);
            assert_eq!(
                n.parse::<usize>().unwrap(),
                *expected,
                "from {from}: {line}"
            );
            *expected += 2;
            received += 1;
        }
        for sender in senders {
            assert_eq!(next[sender], r + PER_SENDER, "everything from {sender}");
        }
    }
}

/// The next line that is not a presence notice (of the others logging in, in their time).
async fn not_a_notice(client: &mut Client) -> String {
    loop {
        let line = client.line().await;
        if !line.starts_with("NOTICE ") {
            return line;
        }
    }
}
