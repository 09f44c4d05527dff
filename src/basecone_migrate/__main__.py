"""`python -m basecone_migrate`."""

from basecone_migrate.cli import main

raise SystemExit(main())
