"""llm-gateway: a Kubernetes-native LLM gateway in front of a LiteLLM proxy."""

__version__ = "0.1.0"
