//! A real IRC client implementation, the `irc` crate, against the IRC listener, with a line
//! client on the plain port in the same room.

use futures::StreamExt;
use irc::client::prelude::{Client, Command, Config, Prefix, Response};
use irc::proto::Message;

use tokio::sync::mpsc;

use super::raw::server;
use crate::support::{PATIENCE, Server, TestServer};

/// What an `irc` crate client receives. Its stream is read all the time, by a task of its
/// own: reading it is also what sends the client's messages.
type Received = mpsc::UnboundedReceiver<Message>;

/// An `irc` crate client registered as `nick`, joining `channels` once welcomed.
pub(crate) async fn connect(
    server: &TestServer,
    nick: &str,
    channels: &[&str],
) -> (Client, Received) {
    let addr = server.irc_addr.expect("an IRC listener");
    let config = Config {
        nickname: Some(nick.to_owned()),
        server: Some(addr.ip().to_string()),
        port: Some(addr.port()),
        channels: channels.iter().map(|c| (*c).to_owned()).collect(),
        ..Config::default()
    };
    let mut client = Client::from_config(config).await.expect("a connection");
    client.identify().expect("registration sent");
    let mut stream = client.stream().expect("the message stream");
    let (received, messages) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            if received.send(message).is_err() {
                break;
            }
        }
    });
    (client, messages)
}

/// The next message `wanted` accepts, skipping others.
pub(crate) async fn next(stream: &mut Received, wanted: impl Fn(&Message) -> bool) -> Message {
    let waiting = async {
        loop {
            let message = stream.recv().await.expect("the connection stays open");
            if wanted(&message) {
                return message;
            }
        }
    };
    tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the message in time")
}

pub(crate) fn is_end_of_names(channel: &str) -> impl Fn(&Message) -> bool + '_ {
    move |message| {
        matches!(&message.command,
            Command::Response(Response::RPL_ENDOFNAMES, args) if args.get(1).map(String::as_str) == Some(channel))
    }
}

#[tokio::test]
async fn the_irc_crate_registers_joins_and_talks_with_a_line_client() {
    let server = server();
    let mut bob = server.guest("bob").await;
    bob.create_room("lobby", &mut []).await;
    let (ann, mut stream) = connect(&server, "ann", &["#lobby"]).await;
    next(&mut stream, is_end_of_names("#lobby")).await;
    assert_eq!(ann.current_nickname(), "ann");
    bob.skip_until("JR lobby ann").await;

    bob.check("RM lobby hi", "OK RM lobby").await;
    let said = next(&mut stream, |m| matches!(m.command, Command::PRIVMSG(..))).await;
    assert_eq!(
        said.prefix,
        Some(Prefix::Nickname(
            "bob".into(),
            "bob".into(),
            "linechat".into()
        ))
    );
    assert_eq!(said.command, Command::PRIVMSG("#lobby".into(), "hi".into()));

    ann.send_privmsg("#lobby", "hi bob").unwrap();
    bob.expect("RM lobby ann hi bob").await;
    ann.send_privmsg("bob", "just you").unwrap();
    bob.expect("PM ann just you").await;
    bob.check("PM ann you too", "OK PM ann").await;
    let private = next(&mut stream, |m| matches!(m.command, Command::PRIVMSG(..))).await;
    assert_eq!(
        private.command,
        Command::PRIVMSG("ann".into(), "you too".into())
    );

    // Presence: the line user leaving shows as a PART, then a QUIT.
    bob.quit().await;
    let part = next(&mut stream, |m| matches!(m.command, Command::PART(..))).await;
    assert_eq!(part.source_nickname(), Some("bob"));
    let quit = next(&mut stream, |m| matches!(m.command, Command::QUIT(..))).await;
    assert_eq!(quit.source_nickname(), Some("bob"));

    ann.send_quit("bye").unwrap();
    let error = next(&mut stream, |m| matches!(m.command, Command::ERROR(..))).await;
    assert_eq!(
        error.command,
        Command::ERROR("Closing link: Quit: bye".into())
    );
}

#[tokio::test]
async fn two_irc_clients_share_a_room_and_see_each_other_join() {
    let server = server();
    let (ann, mut ann_stream) = connect(&server, "ann", &["#dev"]).await;
    next(&mut ann_stream, is_end_of_names("#dev")).await;
    let (cid, mut cid_stream) = connect(&server, "cid", &["#dev"]).await;
    let names = next(&mut cid_stream, |m| {
        matches!(&m.command, Command::Response(Response::RPL_NAMREPLY, _))
            && m.to_string().contains("#dev")
    })
    .await;
    assert!(names.to_string().ends_with(":ann cid\r\n"), "{names}");
    let joined = next(
        &mut ann_stream,
        |m| matches!(&m.command, Command::JOIN(channel, ..) if channel == "#dev"),
    )
    .await;
    assert_eq!(joined.source_nickname(), Some("cid"));
    cid.send_privmsg("#dev", "hello ann").unwrap();
    let said = next(&mut ann_stream, |m| {
        matches!(m.command, Command::PRIVMSG(..))
    })
    .await;
    assert_eq!(
        said.command,
        Command::PRIVMSG("#dev".into(), "hello ann".into())
    );
    ann.send_quit("").unwrap();
}
