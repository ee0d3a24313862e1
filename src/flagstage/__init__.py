"""flagstage: staged feature rollouts on Kubernetes.

This package is the core: the FeatureRollout model, its validation, the stage schedule, tenant
bucketing, rendering of the configuration a workload mounts, and fast evaluation of a rendered
snapshot. It performs no I/O beyond what its command-line front end (`flagstage.cli`) does and
`flagstage.projection`, which writes and reads a directory the way the kubelet projects a
ConfigMap, so the operator, the admission webhook, the app and the CLI all share one set of
rules and one projection.
"""

__version__ = "0.1.0"
