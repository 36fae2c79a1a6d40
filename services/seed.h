/*
 * seed: the `hotplate seed` command, which replaces every row of the data
 * tables with a deterministic, realistic data set and writes demo tokens.
 *
 * The data is generated inside PostgreSQL by migrations/seed.sql, set-based
 * (INSERT ... SELECT over generate_series with a hash of (row key, seed) as
 * the random source), so the same scale, seed and anchor always produce the
 * same rows and scale 1.0 (a million orders) loads in well under a minute.
 * This C side only drives that script inside one transaction, then gives the
 * most active customers and every restaurant owner a real bearer token: the
 * tokens go to a 0600 file, and only their SHA-256 goes to the database.
 */
#ifndef HP_SEED_H
#define HP_SEED_H

/**
 * Entry point of
 * `hotplate seed --scale S [--seed N] [--tokens PATH] [--dir DIR] [--anchor TS]`.
 * argv[0] is the subcommand name. Prints progress and a summary on stdout and
 * errors on stderr. The whole load is one transaction: on failure the
 * database keeps its previous rows, indexes and constraints.
 * @return the process exit status: 0 on success, 1 on failure, 2 on bad usage
 */
int hp_seed_main(int argc, char **argv);

#endif
