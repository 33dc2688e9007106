//! The server on PostgreSQL (`database_url`) instead of its SQLite file.

use crate::postgres_support::Postgres;

#[test]
fn the_fixture_gives_fresh_databases() {
    let postgres = Postgres::shared();
    let a = postgres.database();
    let b = postgres.database();
    assert_ne!(a, b);
}

#[test]
fn an_own_server_stops_and_starts_again() {
    let postgres = Postgres::start();
    let url = postgres.database();
    postgres.stop();
    postgres.start_again();
    assert!(url.starts_with("postgres://"));
}
