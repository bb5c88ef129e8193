"""Default ports of partners' servers, one definition for the API (its docs
and the operator's CronJob) and for the transfer job, which must start without
importing the API models."""

DEFAULT_PORTS = {"SFTP": 22, "FTP": 21}
DEFAULT_FTPS_IMPLICIT_PORT = 990
DEFAULT_IMAP_PORTS = {"IMAPS": 993, "STARTTLS": 143}
