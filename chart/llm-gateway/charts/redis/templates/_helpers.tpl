{{/*
"<release>-redis": the parent chart computes the same name to wire the gateway, so there is no
name override here.
*/}}
{{- define "redis.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: never the chart version (selectors are immutable). */}}
{{- define "redis.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "redis.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | trunc 63 | trimSuffix "-" }}
{{ include "redis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: redis
app.kubernetes.io/part-of: llm-gateway
{{- end }}

{{- define "redis.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end }}

{{/* The Secret holding the password under `redis-password`, when there is a password. */}}
{{- define "redis.secretName" -}}
{{- default (include "redis.fullname" .) .Values.existingSecret }}
{{- end }}

{{- define "redis.hasPassword" -}}
{{- if or .Values.password .Values.existingSecret }}true{{ end }}
{{- end }}
