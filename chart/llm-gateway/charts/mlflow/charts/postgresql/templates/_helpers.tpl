{{/*
"<release>-postgresql": the mlflow chart computes the same name to build its backend store URI,
so there is no name override here.
*/}}
{{- define "postgresql.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: never the chart version (selectors are immutable). */}}
{{- define "postgresql.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "postgresql.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | trunc 63 | trimSuffix "-" }}
{{ include "postgresql.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: postgresql
app.kubernetes.io/part-of: llm-gateway
{{- end }}

{{- define "postgresql.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end }}

{{/* The Secret holding the password, and its key: the chart's own, or auth.existingSecret. */}}
{{- define "postgresql.secretName" -}}
{{- default (include "postgresql.fullname" .) .Values.auth.existingSecret }}
{{- end }}

{{- define "postgresql.secretKey" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.auth.secretKey }}{{ else }}password{{ end }}
{{- end }}

{{/*
The data directory: a subdirectory of the volume, never its root. A fresh filesystem's root may
hold lost+found (initdb refuses a non-empty directory), and the kubelet's fsGroup handling makes
the root group-writable, which PostgreSQL refuses for its data directory.
*/}}
{{- define "postgresql.dataMount" -}}/var/lib/postgresql/data{{- end }}
{{- define "postgresql.pgdata" -}}/var/lib/postgresql/data/pgdata{{- end }}
