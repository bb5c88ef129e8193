"""Platform-initiated transfers: the `connectors transfer` entry, its spec, plan,
ledger and summary, pull, push, mail pull, and the protocol clients."""
