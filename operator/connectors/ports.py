"""Default ports: the one definition every part uses.

Listeners (partner-initiated): the protocols, the port each listener's
container binds (`connectors listen` and the operator's Deployment) and the
port its Service exposes to partners.

Partners' servers (platform-initiated): the defaults of `remote.port`, for
the API (its docs), the operator (known_hosts in the CronJob's ConfigMap),
`kubectl connectors` and the transfer job, which must start without
importing the API models.
"""

LISTENER_PROTOCOLS = ("sftp", "ftp", "smtp")
LISTENER_CONTAINER_PORTS = {"sftp": 2022, "ftp": 2121, "smtp": 2525}
LISTENER_SERVICE_PORTS = {"sftp": 22, "ftp": 21, "smtp": 25}
# The SMTP listener's second port: submission (AUTH after STARTTLS), 587 outside.
SUBMISSION_CONTAINER_PORT, SUBMISSION_SERVICE_PORT = 2587, 587

# Prometheus metrics (`--metrics-port`): the operator's shares the port of its
# liveness endpoint; each listener and processor pod names its port `metrics`.
OPERATOR_METRICS_PORT = 8080
LISTENER_METRICS_PORT = 9090
PROCESSOR_METRICS_PORT = 9091

PARTNER_PORTS = {"SFTP": 22, "FTP": 21}
PARTNER_FTPS_IMPLICIT_PORT = 990
PARTNER_IMAP_PORTS = {"IMAPS": 993, "STARTTLS": 143}
