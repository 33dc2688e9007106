//! The server's edges, over real TCP: what an accepted connection costs (TLS handshakes,
//! connection limits, the login deadline, file descriptors) and which text is refused.

mod support;

use support::TestServer;

/// Text that would show something else than it says is refused whole, naming the character,
/// and reaches nobody; emoji sequences with joiners and variation selectors still pass.
#[tokio::test]
async fn invisible_and_bidi_characters_are_refused_in_text() {
    let server = TestServer::start();
    let mut alice = server.guest("alice").await;
    let mut bob = server.guest("bob").await;
    alice.expect("NOTICE ONLINE bob").await;

    // "Trojan Source": an override that makes "txt.exe" read as "exe.txt".
    let reply = alice.ask("PM bob open \u{202E}txt.exe").await;
    assert_eq!(
        reply,
        "ERR BAD_TEXT invisible or direction-changing character U+202E is not allowed"
    );
    for line in [
        "MSG \u{2067}isolated\u{2069}",
        "MSG zero\u{200B}width",
        "MSG \u{3164}",
        "MSG hidden\u{E0041}\u{E0042}",
        "MSG line\u{2028}break",
    ] {
        let reply = alice.ask(line).await;
        assert!(reply.starts_with("ERR BAD_TEXT "), "{line:?}: {reply}");
        assert!(reply.contains(" U+"), "{line:?}: {reply}");
    }

    let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467} \u{2764}\u{FE0F}";
    assert_eq!(alice.ask(&format!("PM bob {family}")).await, "OK PM bob");
    // The refused lines never reached bob: the first line he gets is the allowed one.
    assert_eq!(bob.line().await, format!("PM alice {family}"));
}
