{{- define "tkms-infra.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tkms-infra.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
tkms.zama.ai/deployment-type: {{ .Values.deploymentType }}
{{- end -}}

{{/* The test environment's annotations for the object named (list $ name). */}}
{{- define "tkms-infra.rehearsal" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- with $root.Values.rehearsal -}}
{{- if .readyAfter }}
testenv.kmsctl/ready-after: {{ .readyAfter | quote }}
{{- end }}
{{- if hasKey (.fail | default dict) $name }}
testenv.kmsctl/fail: {{ index .fail $name | quote }}
{{- end }}
{{- end -}}
{{- end -}}
