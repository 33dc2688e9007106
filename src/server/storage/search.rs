//! `SEARCH`'s query language and its translation into each database's full-text syntax.
//!
//! A query is terms that must all match (AND): a word, a `prefix*`, or a `"quoted phrase"`
//! (its words next to each other, in that order). A word is cut into the index's tokens (runs
//! of letters and digits, lower-cased) the way the text was, so `e-mail` is the phrase `e
//! mail`. The user's text never reaches the engine as syntax: each token is letters and
//! digits only, then quoted as each engine quotes a string, and the operators between them
//! are written here.

use std::fmt::Write as _;

/// A term of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// Tokens next to each other, in order (one token is a plain word).
    Phrase(Vec<String>),
    /// Words that start with this token.
    Prefix(String),
}

/// A parsed query: at least one term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    terms: Vec<Term>,
}

/// At most this many terms, so that a query stays cheap to plan.
pub const MAX_TERMS: usize = 16;

/// The index's tokens of a text: runs of letters and digits, lower-cased.
pub fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|token| !token.is_empty())
        .map(str::to_lowercase)
        .collect()
}

impl SearchQuery {
    /// Reads a query; why it cannot be searched for, in the user's words.
    pub fn parse(words: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        let mut rest = words.trim();
        while !rest.is_empty() {
            if let Some(quoted) = rest.strip_prefix('"') {
                let Some(end) = quoted.find('"') else {
                    return Err("a phrase's closing quote is missing".into());
                };
                let phrase = tokens(&quoted[..end]);
                if phrase.is_empty() {
                    return Err("a phrase holds no word".into());
                }
                terms.push(Term::Phrase(phrase));
                rest = quoted[end + 1..].trim_start();
                continue;
            }
            let end = rest.find([' ', '\t']).unwrap_or(rest.len());
            let (word, after) = rest.split_at(end);
            rest = after.trim_start();
            if word.contains('"') {
                return Err(format!("{word:?}: a quote may only open or close a phrase"));
            }
            let (word, prefix) = match word.strip_suffix('*') {
                Some(stem) => (stem, true),
                None => (word, false),
            };
            if word.contains('*') {
                return Err(format!("{word:?}: '*' may only end a word"));
            }
            let mut cut = tokens(word);
            match (prefix, cut.len()) {
                (_, 0) if prefix => return Err("'*' needs letters or digits before it".into()),
                (_, 0) => {}
                (true, 1) => terms.push(Term::Prefix(cut.remove(0))),
                (true, _) => {
                    return Err(format!(
                        "{word:?}*: a prefix must be letters and digits only"
                    ));
                }
                (false, _) => terms.push(Term::Phrase(cut)),
            }
        }
        if terms.is_empty() {
            return Err("no word to search for (words are letters and digits)".into());
        }
        if terms.len() > MAX_TERMS {
            return Err(format!("at most {MAX_TERMS} words or phrases"));
        }
        Ok(Self { terms })
    }

    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// The query in SQLite FTS5's syntax: each token a string in double quotes (tokens hold
    /// no quote, being letters and digits), `+` joining a phrase, `*` after a prefix's
    /// string, terms side by side (FTS5's implicit AND).
    pub fn fts5(&self) -> String {
        let mut query = String::new();
        for term in &self.terms {
            if !query.is_empty() {
                query.push_str(" AND ");
            }
            match term {
                Term::Phrase(tokens) => {
                    let quoted: Vec<String> = tokens.iter().map(|t| format!("\"{t}\"")).collect();
                    query.push_str(&quoted.join(" + "));
                }
                Term::Prefix(token) => {
                    let _ = write!(query, "\"{token}\" *");
                }
            }
        }
        query
    }

    /// The query in PostgreSQL's `to_tsquery` syntax: each token in single quotes, `<->`
    /// joining a phrase, `:*` after a prefix, `&` between terms.
    pub fn tsquery(&self) -> String {
        let quote = |token: &str| format!("'{}'", token.replace('\'', "''"));
        let terms: Vec<String> = self
            .terms
            .iter()
            .map(|term| match term {
                Term::Phrase(tokens) if tokens.len() == 1 => quote(&tokens[0]),
                Term::Phrase(tokens) => {
                    let quoted: Vec<String> = tokens.iter().map(|t| quote(t)).collect();
                    format!("({})", quoted.join(" <-> "))
                }
                Term::Prefix(token) => format!("{}:*", quote(token)),
            })
            .collect();
        terms.join(" & ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_phrases_and_prefixes_translate_quoted() {
        let query = SearchQuery::parse(r#"Hello "big  World" tea* e-mail"#).unwrap();
        assert_eq!(
            query.fts5(),
            r#""hello" AND "big" + "world" AND "tea" * AND "e" + "mail""#
        );
        assert_eq!(
            query.tsquery(),
            "'hello' & ('big' <-> 'world') & 'tea':* & ('e' <-> 'mail')"
        );
    }

    #[test]
    fn engine_syntax_in_the_words_is_only_words() {
        let query = SearchQuery::parse("a:* NEAR(b) OR c&d !e '").unwrap();
        assert_eq!(
            query.tsquery(),
            "'a':* & ('near' <-> 'b') & 'or' & ('c' <-> 'd') & 'e'"
        );
        assert!(!query.fts5().contains('('));
    }

    #[test]
    fn what_cannot_be_searched_is_refused() {
        for bad in [
            "", "  ", "*", "!!", "\"open", "\"  \"", "a*b", "wo\"rd", "e-ma*",
        ] {
            assert!(SearchQuery::parse(bad).is_err(), "{bad:?}");
        }
        let many = vec!["w"; MAX_TERMS + 1].join(" ");
        assert!(SearchQuery::parse(&many).is_err());
    }
}
