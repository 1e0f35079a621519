"""The e2e harness: a pod spec from the chart, Docker containers, a kubelet and a Service.

pod.py        PodSpec extracted from rendered manifests (env, probes, preStop, security, volumes)
manifests.py  the rendered chart (kind values), or the fixture while the chart does not exist
container.py  PodContainer: one pod's container under Docker, every action timestamped
kubelet.py    Kubelet: startup/liveness/readiness probes, restarts, kubelet-style termination
endpoints.py  Endpoints (delayed propagation) + ServiceProxy (round-robin to Ready pods)
deployment.py PodFactory and rolling_restart(maxSurge 1, maxUnavailable 0)
"""
