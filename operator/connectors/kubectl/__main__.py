"""`python -m connectors.kubectl`: the same as the `kubectl-connectors` executable."""

from .main import main

raise SystemExit(main())
