//! Who to log in as (flags, a password file, or questions on the terminal), and the first
//! login: `LOGIN`, and `REGISTER` when the account does not exist and the user agrees.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use linechat_protocol::{ErrorCode, Name, Password};

use crate::connection::{Connection, Credentials, Line, LoginError};
use crate::format;
use crate::input;

/// Whether a failed `LOGIN` may be followed by `REGISTER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Register {
    Yes,
    /// Ask on the terminal; `confirm` asks for a typed password a second time.
    Ask {
        confirm: bool,
    },
    No,
}

/// Reads a line typed on the terminal, after a prompt on standard error.
fn ask(prompt: &str) -> Result<String, String> {
    if !std::io::stdin().is_terminal() {
        return Err(
            "standard input is not a terminal, so the client cannot ask: give --user \
                    and --password-file (or --guest)"
                .into(),
        );
    }
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) => Err("no answer: standard input ended".into()),
        Ok(_) => Ok(line.trim_end_matches(['\n', '\r']).to_owned()),
        Err(error) => Err(format!("cannot read the terminal: {error}")),
    }
}

fn ask_password(prompt: &str) -> Result<Password, String> {
    let password = rpassword::prompt_password(prompt).map_err(|error| {
        format!("cannot ask for the password ({error}): give --password-file, or --guest")
    })?;
    check_password(password)
}

fn check_password(password: String) -> Result<Password, String> {
    let password = password.trim_matches([' ', '\t']);
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    if password.chars().any(char::is_control) {
        return Err("the password holds a control character".into());
    }
    Ok(Password::new(password))
}

/// The first line of a file, as a password.
pub fn read_password_file(path: &Path) -> Result<Password, String> {
    let contents = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read the password file {}: {error}", path.display()))?;
    let first = contents.lines().next().unwrap_or_default();
    check_password(first.into()).map_err(|error| format!("{error} (in {})", path.display()))
}

/// The credentials from the flags, asking on the terminal for what is missing.
pub fn credentials(
    user: Option<&str>,
    password_file: Option<&Path>,
    guest: bool,
) -> Result<Credentials, String> {
    let raw = match user {
        Some(user) => user.to_owned(),
        None => ask("Name: ")?,
    };
    let name = input::name(&raw).map_err(|error| format!("bad name {raw:?}: {error}"))?;
    let password = if guest {
        None
    } else if let Some(path) = password_file {
        Some(read_password_file(path)?)
    } else {
        Some(ask_password(&format!("Password for {name}: "))?)
    };
    Ok(Credentials { name, password })
}

fn agrees(name: &Name) -> Result<bool, String> {
    let answer = ask(&format!(
        "There is no account {name} with this password. Create it? [y/N] "
    ))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
}

/// Connects and logs in. Returns the connection, our name as the server spells it, and the
/// lines that came before the login's answer.
pub async fn first(
    addr: &str,
    credentials: &Credentials,
    register: Register,
) -> Result<(Connection, Name, Vec<Line>), String> {
    let mut connection = Connection::open(addr)
        .await
        .map_err(|error| format!("cannot connect to {addr}: {error}"))?;
    let mut before = Vec::new();
    let refused = match connection.login(&credentials.login(), &mut before).await {
        Ok(name) => return Ok((connection, name, before)),
        Err(LoginError::Refused { code, message }) => (code, message),
        Err(error) => return Err(format!("login failed: {error}")),
    };
    let register_command = match (refused.0, credentials.register()) {
        (ErrorCode::BadPassword, Some(command)) => command,
        (code, _) => {
            let why = format::err(code, &refused.1, Some(&credentials.login()));
            return Err(format!("login failed: {why}"));
        }
    };
    let name = credentials.name.clone();
    let agreed = match register {
        Register::Yes => true,
        Register::No => false,
        Register::Ask { confirm } => {
            let check = name.clone();
            let agreed = tokio::task::spawn_blocking(move || agrees(&check))
                .await
                .map_err(|error| error.to_string())??;
            if agreed && confirm {
                let again = tokio::task::spawn_blocking(|| ask_password("Repeat the password: "))
                    .await
                    .map_err(|error| error.to_string())??;
                if Some(&again) != credentials.password.as_ref() {
                    return Err("the passwords differ; nothing was created".into());
                }
            }
            agreed
        }
    };
    if !agreed {
        // BAD_PASSWORD does not tell a wrong password from a name without an account.
        return Err(format!(
            "login failed: {} (if {name} has no account yet, --register creates it)",
            format::printable(&refused.1)
        ));
    }
    match connection.login(&register_command, &mut before).await {
        Ok(name) => {
            eprintln!("client: created the account {name}");
            Ok((connection, name, before))
        }
        // The name is registered (so the password was wrong), being registered, online as
        // a guest, or too like another: the server's message says which.
        Err(LoginError::Refused {
            code: ErrorCode::NameTaken,
            message,
        }) => Err(format!(
            "login failed: there is no account {name} with this password, and it cannot be \
             created: {}",
            format::printable(&message)
        )),
        Err(LoginError::Refused { code, message }) => Err(format!(
            "registering {name} failed: {}",
            format::err(code, &message, Some(&register_command))
        )),
        Err(error) => Err(format!("registering {name} failed: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "correct horse \r\nsecond line\n").unwrap();
        assert_eq!(
            read_password_file(&path).unwrap(),
            Password::new("correct horse")
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(
            read_password_file(&path)
                .unwrap_err()
                .starts_with("the password is empty")
        );
        let missing = read_password_file(&dir.path().join("nope")).unwrap_err();
        assert!(
            missing.starts_with("cannot read the password file"),
            "{missing}"
        );
    }
}
