{{/* Test stand-in written from the kms-toolkit inventory; not the real zama-ai/kms chart. */}}

{{/* <release>-core: StatefulSet, headless Service, and the prefix of pods and per-pod Services. */}}
{{- define "kms-core.coreName" -}}
{{- printf "%s-core" .Release.Name | trunc 56 | trimSuffix "-" -}}
{{- end -}}

{{- define "kms-core.clientName" -}}
{{- .Values.kmsCoreClient.nameOverride | default (printf "%s-client" .Release.Name) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kms-core.chartLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/*
Pod labels: app and app.kubernetes.io/name only. The real chart has no
app.kubernetes.io/instance anywhere, which is why the toolkit's --collect-logs finds no pods.
*/}}
{{- define "kms-core.selectorLabels" -}}
app: kms-core
app.kubernetes.io/name: {{ include "kms-core.coreName" . }}
{{- end -}}

{{- define "kms-core.image" -}}
{{- printf "%s:%v" .name .tag -}}
{{- end -}}

{{/* Callers write `with include ...` + nindent, so an empty result leaves no blank line. */}}
{{- define "kms-core.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* The party ConfigMap (bucket names etc.) as environment, when one is named. */}}
{{- define "kms-core.envFrom" -}}
{{- with .configmap.name -}}
envFrom:
  - configMapRef:
      name: {{ . }}
{{- end -}}
{{- end -}}

{{/*
Bucket of a vault, from (list $ vault envFrom): from the party ConfigMap (envsubst at pod
start) when one is named and the storage is real S3, else the bucket in values.
*/}}
{{- define "kms-core.bucket" -}}
{{- $root := index . 0 -}}
{{- $vault := index . 1 -}}
{{- if and (not $root.Values.minio.enabled) (index . 2).configmap.name -}}
{{- printf "${KMS_CORE__%s_VAULT__STORAGE__S3__BUCKET}" (upper $vault) -}}
{{- else -}}
{{- (index $root.Values.kmsCore (printf "%sVault" $vault)).s3.bucket -}}
{{- end -}}
{{- end -}}

{{/* S3 object prefix of party <id>'s public vault: PUB-p<id> when the toolkit's convention holds. */}}
{{- define "kms-core.pubPrefixOf" -}}
{{- printf "PUB-p%v" . -}}
{{- end -}}

{{/*
Resources of a container that runs the enclave: the core's resources plus the Nitro device and
the enclave's memory as 1Gi hugepages (which Kubernetes only accepts beside cpu or memory).
*/}}
{{- define "kms-core.enclaveResources" -}}
{{- $core := .Values.kmsCore -}}
{{- $hp := printf "%dGi" (div (add $core.nitroEnclave.memoryMiB 1023) 1024) -}}
resources:
  requests:
    {{- with $core.resources.requests }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    aws.ec2.amazonaws.com/nitro_enclaves: "1"
    hugepages-1Gi: {{ $hp }}
  limits:
    {{- with $core.resources.limits }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    aws.ec2.amazonaws.com/nitro_enclaves: "1"
    hugepages-1Gi: {{ $hp }}
{{- end -}}
