"""Prometheus metrics: one module of definitions per kind of process
(operator, listener, processor) and the server that exposes them.

The definitions are module-level objects in prometheus_client's default
registry, so a process exposes its own kind's metrics (and the process and
Python collectors prometheus_client adds); a module that is never imported
exposes nothing. The code increments them at its seams (the login gate, the
transfer reports, the work queue, the reconcilers) through the functions
here, never with prometheus_client calls of its own.

Labels are bounded: namespace, connection, protocol, result, reason, kind,
queue, condition, status. Never a file name, a username or an address.
"""
