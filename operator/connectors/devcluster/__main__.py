"""`python -m connectors.devcluster`: see the package's docstring."""

from .cli import main

raise SystemExit(main())
