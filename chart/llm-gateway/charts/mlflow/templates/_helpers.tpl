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

{{- define "mlflow.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag }}
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
