{{/*
Names. Kubernetes names are DNS labels: at most 63 characters, no trailing dash.
*/}}
{{- define "llm-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "llm-gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "llm-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: immutable on a Deployment, so they never carry the chart or app version.
*/}}
{{- define "llm-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "llm-gateway.labels" -}}
helm.sh/chart: {{ include "llm-gateway.chart" . }}
{{ include "llm-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: gateway
app.kubernetes.io/part-of: llm-gateway
{{- end }}

{{- define "llm-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "llm-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "llm-gateway.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Subchart service names: each subchart names its objects "<release>-<chart>" (see its helpers).
*/}}
{{- define "llm-gateway.litellmName" -}}
{{- printf "%s-litellm" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "llm-gateway.qdrantName" -}}
{{- printf "%s-qdrant" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "llm-gateway.mlflowName" -}}
{{- printf "%s-mlflow" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "llm-gateway.redisName" -}}
{{- printf "%s-redis" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Where the gateway finds its dependencies: the subchart's Service when enabled, else external.
*/}}
{{- define "llm-gateway.litellmUrl" -}}
{{- if .Values.litellm.enabled }}
{{- printf "http://%s:%d" (include "llm-gateway.litellmName" .) (int .Values.litellm.service.port) }}
{{- else }}
{{- required "litellm.enabled=false needs external.litellmUrl (the LiteLLM proxy's base URL)" .Values.external.litellmUrl }}
{{- end }}
{{- end }}

{{- define "llm-gateway.qdrantUrl" -}}
{{- if .Values.qdrant.enabled }}
{{- printf "http://%s:%d" (include "llm-gateway.qdrantName" .) (int .Values.qdrant.service.httpPort) }}
{{- else }}
{{- .Values.external.qdrantUrl }}
{{- end }}
{{- end }}

{{- define "llm-gateway.mlflowUrl" -}}
{{- if .Values.mlflow.enabled }}
{{- printf "http://%s:%d" (include "llm-gateway.mlflowName" .) (int .Values.mlflow.service.port) }}
{{- else }}
{{- .Values.external.mlflowTrackingUri }}
{{- end }}
{{- end }}

{{/*
Rate-limit store: the redis subchart's Service when enabled (its password, if any, reaches the
gateway as RATE_LIMIT_STORAGE_PASSWORD), else an external Redis URL from a Secret
(external.rateLimitStorage), else nothing: the service's embedded store, shared by the workers
of each pod (the limit is then per pod).
*/}}
{{- define "llm-gateway.redisUrl" -}}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s:%d/0" (include "llm-gateway.redisName" .) (int .Values.redis.service.port) }}
{{- end }}
{{- end }}

{{- define "llm-gateway.redisPasswordFromSubchart" -}}
{{- if and .Values.redis.enabled (or .Values.redis.password .Values.redis.existingSecret) }}true{{ end }}
{{- end }}

{{- define "llm-gateway.validateRateLimitStorage" -}}
{{- if and .Values.redis.enabled .Values.external.rateLimitStorage.existingSecret }}
{{- fail "llm-gateway: redis.enabled=true and external.rateLimitStorage.existingSecret both name a rate-limit store; choose one." }}
{{- end }}
{{- end }}

{{/*
Secrets. The chart's own Secret unless secrets.existingSecret names one the operator manages.
*/}}
{{- define "llm-gateway.secretName" -}}
{{- default (include "llm-gateway.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* Refuse to render without a JWT signing key source: the service would refuse to boot. */}}
{{- define "llm-gateway.requireJwtSecret" -}}
{{- if and (not .Values.secrets.existingSecret) (not .Values.secrets.jwtSecretKey) }}
{{- fail "llm-gateway: no JWT secret source. Set secrets.jwtSecretKey (at least 32 characters; generate one with `openssl rand -hex 32`) or secrets.existingSecret (a Secret holding it under secrets.keys.jwtSecretKey)." }}
{{- end }}
{{- end }}

{{- define "llm-gateway.usersSecretName" -}}
{{- default (include "llm-gateway.fullname" .) .Values.users.existingSecret }}
{{- end }}

{{- define "llm-gateway.apiKeysSecretName" -}}
{{- default (include "llm-gateway.fullname" .) .Values.apiKeys.existingSecret }}
{{- end }}

{{- define "llm-gateway.apiKeysEnabled" -}}
{{- if or .Values.apiKeys.existingSecret .Values.apiKeys.list }}true{{ end }}
{{- end }}

{{- define "llm-gateway.usersEnabled" -}}
{{- if or .Values.users.existingSecret .Values.users.list }}true{{ end }}
{{- end }}

{{/*
Drain budget. The kubelet's grace period counts from the start of preStop, so it must cover
preStop + gunicorn's graceful timeout + a margin; the service itself refuses
uvicorn drain + flush >= gunicorn graceful timeout. Both are checked here so a bad values file
fails at `helm template`, not at 3 a.m. during a rollout.
*/}}
{{- define "llm-gateway.validateDrain" -}}
{{- $d := .Values.drain }}
{{- $needed := addf $d.preStopSeconds $d.gunicornGracefulTimeout $d.marginSeconds }}
{{- if lt (float64 $d.terminationGracePeriodSeconds) (float64 $needed) }}
{{- fail (printf "llm-gateway: drain.terminationGracePeriodSeconds (%v) must be >= drain.preStopSeconds (%v) + drain.gunicornGracefulTimeout (%v) + drain.marginSeconds (%v) = %v, or the kubelet SIGKILLs pods that are still draining." $d.terminationGracePeriodSeconds $d.preStopSeconds $d.gunicornGracefulTimeout $d.marginSeconds $needed) }}
{{- end }}
{{- $inner := addf $d.uvicornGracefulTimeout $d.shutdownFlushTimeout }}
{{- if ge (float64 $inner) (float64 $d.gunicornGracefulTimeout) }}
{{- fail (printf "llm-gateway: drain.uvicornGracefulTimeout (%v) + drain.shutdownFlushTimeout (%v) must be below drain.gunicornGracefulTimeout (%v), or gunicorn kills workers before they finish draining." $d.uvicornGracefulTimeout $d.shutdownFlushTimeout $d.gunicornGracefulTimeout) }}
{{- end }}
{{- end }}

{{/*
preStop: the native `sleep` action needs Kubernetes >= 1.30; `exec` runs /bin/sleep from the image.
"auto" picks by the cluster's version (helm template: --kube-version).
*/}}
{{- define "llm-gateway.preStopMode" -}}
{{- $mode := .Values.drain.preStopMode }}
{{- if eq $mode "auto" }}
{{- if semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version }}sleep{{ else }}exec{{ end }}
{{- else }}
{{- $mode }}
{{- end }}
{{- end }}

{{/*
More than one pod at all times: the only case where a PodDisruptionBudget helps (on a single pod
it would block every node drain).
*/}}
{{- define "llm-gateway.multiReplica" -}}
{{- if .Values.autoscaling.enabled }}
{{- if gt (int .Values.autoscaling.minReplicas) 1 }}true{{ end }}
{{- else if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}
