"""The SMTP listener."""
