"""flagstage operator: reconciles FeatureRollouts into ConfigMaps, status and reloads (kopf)."""
