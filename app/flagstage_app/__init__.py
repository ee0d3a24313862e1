"""The customer-insights API: the reference workload that reads flagstage toggles live."""
