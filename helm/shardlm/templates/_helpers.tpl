{{/* Names, labels and the shared pieces of the launcher and worker pod templates. */}}

{{- define "shardlm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-wide name, short enough for "<fullname>-mpi-worker-NNN" pod names. */}}
{{- define "shardlm.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The MPIJob; the operator derives "<job>-launcher", "<job>-worker-N" and its Services from it. */}}
{{- define "shardlm.mpijobName" -}}
{{- printf "%s-mpi" (include "shardlm.fullname" .) -}}
{{- end -}}

{{- define "shardlm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "shardlm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shardlm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "shardlm.labels" -}}
helm.sh/chart: {{ include "shardlm.chart" . }}
{{ include "shardlm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: shardlm
{{- with .Values.model.variant }}
shardlm/model-variant: {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "shardlm.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "shardlm.modelClaimName" -}}
{{- default (printf "%s-model" (include "shardlm.fullname" .)) .Values.model.volume.pvc.existingClaim -}}
{{- end -}}

{{- define "shardlm.stateClaimName" -}}
{{- default (printf "%s-state" (include "shardlm.fullname" .)) .Values.state.persistence.existingClaim -}}
{{- end -}}

{{- define "shardlm.apiKeysSecretName" -}}
{{- default (printf "%s-api-keys" (include "shardlm.fullname" .)) .Values.apiKeys.existingSecret -}}
{{- end -}}

{{/* The model volume, identical in the launcher and the workers. */}}
{{- define "shardlm.modelVolume" -}}
- name: model
{{- if eq .Values.model.volume.type "pvc" }}
  persistentVolumeClaim:
    claimName: {{ include "shardlm.modelClaimName" . }}
    readOnly: true
{{- else if eq .Values.model.volume.type "hostPath" }}
  {{- if not .Values.model.volume.hostPath.path }}
  {{- fail "model.volume.hostPath.path is required when model.volume.type is hostPath" }}
  {{- end }}
  hostPath:
    path: {{ .Values.model.volume.hostPath.path }}
    type: {{ .Values.model.volume.hostPath.type }}
{{- else }}
  {{- fail (printf "model.volume.type %q is not pvc or hostPath" .Values.model.volume.type) }}
{{- end }}
{{- end -}}

{{- define "shardlm.modelVolumeMount" -}}
- name: model
  mountPath: {{ .Values.model.path }}
  readOnly: true
  {{- with .Values.model.subPath }}
  subPath: {{ . }}
  {{- end }}
{{- end -}}

{{/* Environment of Open MPI shared by launcher and workers (as scripts/mpi_env.sh). */}}
{{- define "shardlm.mpiEnv" -}}
- name: SHARDLM_MPI_TRANSPORT
  value: {{ .Values.mpi.transport | quote }}
{{- with .Values.mpi.ucxTls }}
- name: SHARDLM_UCX_TLS
  value: {{ . | quote }}
{{- end }}
{{- with .Values.mpi.ucxNetDevices }}
- name: SHARDLM_UCX_NET_DEVICES
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Names of extraEnv, space-separated: launch.sh forwards them to every rank (mpirun -x). */}}
{{- define "shardlm.envNames" -}}
{{- $names := list -}}
{{- range .Values.extraEnv -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- join " " $names -}}
{{- end -}}
