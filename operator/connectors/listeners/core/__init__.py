"""What the three listeners share: the account table, the one login gate,
sessions, defender, jail, TLS and reporting to status."""
