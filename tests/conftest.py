from __future__ import annotations

import os

# litellm (in its own venv) and anything it spawns must never fetch a cost map from GitHub.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
