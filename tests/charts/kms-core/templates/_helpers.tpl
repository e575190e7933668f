{{/* <release>-core: the StatefulSet, its headless Service and the per-pod Service prefix. */}}
{{- define "kms-core.coreName" -}}
{{- printf "%s-core" .Release.Name | trunc 56 | trimSuffix "-" -}}
{{- end -}}

{{- define "kms-core.chartLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Like the KMS chart: app and app.kubernetes.io/name, no app.kubernetes.io/instance. */}}
{{- define "kms-core.selectorLabels" -}}
app: kms-core
app.kubernetes.io/name: {{ include "kms-core.coreName" . }}
{{- end -}}
