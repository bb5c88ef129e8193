"""Partner-initiated transfers: the listeners a partner connects to (sftp, ftp,
smtp) and the `connectors listen` entry."""
