"""Protocol clients of the transfer jobs: each turns one protocol into the small
interfaces of `base`, and the job does the rest (planning, landing, ledger)."""
