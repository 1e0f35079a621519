{{/*
"<release>-mlflow": the parent chart computes the same name to wire the gateway, so there is no
name override here.
*/}}
{{- define "mlflow.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: never the chart version (selectors are immutable). */}}
{{- define "mlflow.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mlflow.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | trunc 63 | trimSuffix "-" }}
{{ include "mlflow.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: mlflow
app.kubernetes.io/part-of: llm-gateway
{{- end }}

{{/*
Host headers MLflow (>= 3.5, DNS-rebinding protection) accepts: every in-cluster name of the
Service, with and without the port, and localhost for `kubectl port-forward`. /health is exempt,
so the kubelet's probes (Host: <pod IP>) pass regardless.
*/}}
{{- define "mlflow.allowedHosts" -}}
{{- $name := include "mlflow.fullname" . }}
{{- $port := int .Values.service.port }}
{{- $hosts := list }}
{{- range (list $name (printf "%s.%s" $name .Release.Namespace) (printf "%s.%s.svc" $name .Release.Namespace) (printf "%s.%s.svc.%s" $name .Release.Namespace .Values.clusterDomain) "localhost" "127.0.0.1") }}
{{- $hosts = append $hosts . }}
{{- $hosts = append $hosts (printf "%s:%d" . $port) }}
{{- end }}
{{- $hosts = concat $hosts .Values.extraAllowedHosts }}
{{- join "," $hosts }}
{{- end }}

{{/*
MLflow's store: "postgresql" (the bundled charts/postgresql), "external" (a URL from
database.existingSecret) or "sqlite" (the file on the PVC). Both database routes at once are
refused: one of them would be silently ignored.
*/}}
{{- define "mlflow.store" -}}
{{- if and .Values.postgresql.enabled .Values.database.existingSecret }}
{{- fail "mlflow.postgresql.enabled and mlflow.database.existingSecret both name MLflow's store; choose one." }}
{{- end }}
{{- if .Values.postgresql.enabled }}postgresql{{ else if .Values.database.existingSecret }}external{{ else }}sqlite{{ end }}
{{- end }}

{{/* The plain image has no PostgreSQL driver: a database store runs databaseTag when set. */}}
{{- define "mlflow.image" -}}
{{- $tag := .Values.image.tag }}
{{- if and (ne (include "mlflow.store" .) "sqlite") .Values.image.databaseTag }}
{{- $tag = .Values.image.databaseTag }}
{{- end }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}

{{/*
The bundled PostgreSQL: its Service is "<release>-postgresql" (charts/postgresql's fullname). No
password in the URI: libpq reads it from PGPASSWORD, so any character works and nothing secret
reaches the pod spec or MLflow's command line. psycopg (3) named explicitly: both the project's
image and MLflow's -full image carry it.
*/}}
{{- define "mlflow.postgresqlHost" -}}
{{- printf "%s-postgresql" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mlflow.postgresqlUri" -}}
{{- $pg := .Values.postgresql }}
{{- printf "postgresql+psycopg://%s@%s:%d/%s" $pg.auth.username (include "mlflow.postgresqlHost" .) (int $pg.service.port) $pg.auth.database }}
{{- end }}

{{- define "mlflow.postgresqlSecretName" -}}
{{- default (include "mlflow.postgresqlHost" .) .Values.postgresql.auth.existingSecret }}
{{- end }}

{{- define "mlflow.postgresqlSecretKey" -}}
{{- if .Values.postgresql.auth.existingSecret }}{{ .Values.postgresql.auth.secretKey }}{{ else }}password{{ end }}
{{- end }}

{{/* Where MLflow's store URI comes from, as container env (shared by store-init and server). */}}
{{- define "mlflow.storeEnv" -}}
{{- $store := include "mlflow.store" . }}
{{- if eq $store "postgresql" }}
- name: MLFLOW_BACKEND_STORE_URI
  value: {{ include "mlflow.postgresqlUri" . | quote }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "mlflow.postgresqlSecretName" . }}
      key: {{ include "mlflow.postgresqlSecretKey" . }}
{{- else if eq $store "external" }}
- name: MLFLOW_BACKEND_STORE_URI
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret | quote }}
      key: {{ .Values.database.key | quote }}
{{- end }}
{{- end }}
