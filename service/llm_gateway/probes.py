"""The paths that probes and scrapers call, many times a minute on every pod.

They are neither traced, access-logged, nor counted as in-flight work by the drain: their
answers say how the pod is, they are not work the pod does for anyone.
"""

from __future__ import annotations

PROBE_PATHS = ("/livez", "/readyz", "/health", "/metrics")
