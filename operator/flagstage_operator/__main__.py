"""`python -m flagstage_operator` runs the operator, like `flagstage-operator`."""

from flagstage_operator.main import main

raise SystemExit(main())
