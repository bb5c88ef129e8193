"""The processor: checks every landed file of a namespace's Inbound Connections
against its schema, writes the result file back where the partner looks, keeps
the submission history, and reports to the Connection.

It runs as one Deployment per namespace (`connectors process`), apart from the
listeners and the transfer jobs, so that checking never slows down receiving.
It finds landed files by their receipts, which every landing path writes
(listeners, transfer jobs, email): nothing that lands a file needs to know it.

- discover.py: receipts -> the submission store (idempotent by trace id);
- work.py: claim, check, write the result file, mark checked;
- report.py: status.submissions and events on the Connection;
- main.py: the loop and its settings.
"""
