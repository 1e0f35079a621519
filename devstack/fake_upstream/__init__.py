"""A controllable OpenAI-compatible upstream for tests, `make run` demos and the benchmark.

Run it as its own process: `python -m devstack.fake_upstream --port N`. The behaviour language
(latency, injected statuses, resets, stalls, broken streams) is described in `controls`.
"""

from devstack.fake_upstream.controls import Behaviour, ControlError, Controls, Fault
from devstack.fake_upstream.server import create_app, start

__all__ = ["Behaviour", "ControlError", "Controls", "Fault", "create_app", "start"]
