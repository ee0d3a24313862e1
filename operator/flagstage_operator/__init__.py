"""flagstage_operator: the Kubernetes side of flagstage.

This package reconciles FeatureRollout resources (status, conditions, Events, the rendered
ConfigMap, reload annotations, stage timers), serves the admission webhook and the metrics,
and adds the `promote|pause|resume|rollback` and `sync` subcommands to `kubectl flagstage`.
Every rule of the toggle model stays in the core (`flagstage`); this package only asks it and
acts on the answers. It is named `flagstage_operator`, not `operator`, so it never shadows the
standard library module of that name.
"""

OPERATOR_NAME = "flagstage-operator"
FIELD_MANAGER = OPERATOR_NAME
