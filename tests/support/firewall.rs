//! Firewall rules that drop packets on the loopback interface, for the tests of what the server
//! does when a peer vanishes or a node is cut off without its connections being closed. They
//! need `iptables` (scripts/test-deps.sh installs it) and root, which CI has. Each rule matches
//! only the test's own addresses, ports or user, so that the tests running beside it are not
//! touched; the rules are removed when dropped, also when the test panics.

use std::process::Command;

pub struct Dropped {
    rules: Vec<Vec<String>>,
}

impl Dropped {
    /// Inserts `rules`, each an iptables rule spec without its action (e.g.
    /// `INPUT -i lo -s 127.0.9.9`), each with `-j DROP`.
    pub fn packets(rules: &[&str]) -> Self {
        let rules: Vec<Vec<String>> = rules
            .iter()
            .map(|rule| {
                rule.split(' ')
                    .chain(["-j", "DROP"])
                    .map(str::to_owned)
                    .collect()
            })
            .collect();
        for rule in &rules {
            iptables("-I", rule);
        }
        Self { rules }
    }
}

impl Drop for Dropped {
    fn drop(&mut self) {
        for rule in &self.rules {
            iptables("-D", rule);
        }
    }
}

fn iptables(action: &str, rule: &[String]) {
    let status = Command::new("iptables")
        .arg("-w")
        .arg(action)
        .args(rule)
        .status()
        .expect("run iptables (scripts/test-deps.sh installs it; the tests run as root)");
    assert!(status.success(), "iptables {action} {rule:?}");
}
