"""The SFTP listener."""
