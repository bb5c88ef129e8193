"""The `kubectl connectors` plugin: the partner hand-off and a status table."""
