"""The service's one configuration door.

`Settings` is built once at the entry point (`load_settings`) and passed down. Every field reads
from an environment variable of the same name (upper case), from `.env`, or, for secrets, from a
file of that name in `SECRETS_DIR` (how Kubernetes mounts Secrets). Unsafe values stop the boot:
`load_settings` raises `ConfigurationError` whose lines name every problem at once.

The fields live in two groups (service_fields.py, dependency_fields.py), the rules between them
in cross_field.py, the sources in sources.py, the development signing key in signing_key.py.
"""

from llm_gateway.settings.loading import load_settings
from llm_gateway.settings.model import Settings
from llm_gateway.settings.signing_key import signing_key
from llm_gateway.settings.values import DEFAULT_MODEL_NAME_PATTERN, READINESS_CHECK_NAMES

__all__ = [
    "DEFAULT_MODEL_NAME_PATTERN",
    "READINESS_CHECK_NAMES",
    "Settings",
    "load_settings",
    "signing_key",
]
