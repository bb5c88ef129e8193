"""The FTP(S) listener."""
