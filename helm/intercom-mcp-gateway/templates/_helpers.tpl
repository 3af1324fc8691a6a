{{/* Chart name, truncated to the 63-character DNS label limit. */}}
{{- define "imgw.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name when it already contains the chart name
(`helm install intercom-mcp-gateway ...`), else `<release>-<chart>`.
*/}}
{{- define "imgw.fullname" -}}
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

{{- define "imgw.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. `part-of` is constant: the ServiceMonitor uses it as the
Prometheus `job`, which the alert rules in files/alerts.yaml select on. */}}
{{- define "imgw.labels" -}}
helm.sh/chart: {{ include "imgw.chart" . }}
{{ include "imgw.baseSelectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: intercom-mcp-gateway
{{- end }}

{{- define "imgw.baseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "imgw.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selects the gateway pods only (not the migration Job's pods). */}}
{{- define "imgw.selectorLabels" -}}
{{ include "imgw.baseSelectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "imgw.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "imgw.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret the pods read: `secrets.existingSecret` or the chart's own. */}}
{{- define "imgw.secretName" -}}
{{- default (include "imgw.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "imgw.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
terminationGracePeriodSeconds must outlast preStop sleep + drain, or the kubelet SIGKILLs
in-flight tool calls (and their usage rows) mid-drain.
*/}}
{{- define "imgw.terminationGracePeriodSeconds" -}}
{{- $floor := add (int .Values.preStopSleepSeconds) (int .Values.config.shutdownTimeoutSeconds) }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $floor 10 }}
{{- else if le (int .Values.terminationGracePeriodSeconds) (int $floor) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be larger than preStopSleepSeconds + config.shutdownTimeoutSeconds (%d)" (int .Values.terminationGracePeriodSeconds) (int $floor)) }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/* secretKeyRef env entry: (dict "ctx" $ "env" "DATABASE_URL" "key" "databaseUrl" "optional" false) */}}
{{- define "imgw.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ include "imgw.secretName" .ctx }}
      key: {{ index .ctx.Values.secrets.keys .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end }}
