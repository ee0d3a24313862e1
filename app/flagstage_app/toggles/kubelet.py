"""The kubelet's update sequence for a ConfigMap volume, as the app's tests and local runs use it.

The implementation lives in the core (`flagstage.projection`), so that `flagstage sync` and the
app write the very same sequence; this module keeps the app's import path.
"""

from flagstage.projection import (
    DATA_LINK,
    DATA_TMP_LINK,
    Publication,
    current_version,
    publish,
    read_projection,
)

__all__ = [
    "DATA_LINK",
    "DATA_TMP_LINK",
    "Publication",
    "current_version",
    "publish",
    "read_projection",
]
