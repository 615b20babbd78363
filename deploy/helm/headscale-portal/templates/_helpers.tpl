{{/* Names and labels shared by every object of the chart. */}}

{{- define "portal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or the release name when it already contains the chart name;
     at most 63 characters (a DNS label). */}}
{{- define "portal.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "portal.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: stable for the release's lifetime (a Deployment's selector is immutable). */}}
{{- define "portal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Kubernetes' recommended labels. */}}
{{- define "portal.labels" -}}
helm.sh/chart: {{ include "portal.chart" . }}
{{ include "portal.selectorLabels" . }}
app.kubernetes.io/version: {{ include "portal.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: headscale-portal
{{- end -}}

{{- define "portal.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{/* repository@digest when a digest is given, else repository:tag. */}}
{{- define "portal.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "portal.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{/* The Secret that secrets.create makes for development clusters. */}}
{{- define "portal.devSecretName" -}}
{{- printf "%s-dev" (include "portal.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* An env entry read from a Secret: (list $ "ENV_NAME" .Values.secrets.<ref>). With
     secrets.create the reference points into the chart's dev Secret instead. */}}
{{- define "portal.secretEnv" -}}
{{- $root := index . 0 -}}
{{- $env := index . 1 -}}
{{- $ref := index . 2 -}}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      {{- if $root.Values.secrets.create }}
      name: {{ include "portal.devSecretName" $root }}
      key: {{ $env }}
      {{- else }}
      name: {{ $ref.name }}
      key: {{ $ref.key }}
      {{- end }}
{{- end -}}

{{/* Settings the chart cannot express in values.schema.json; fails the render. */}}
{{- define "portal.validate" -}}
{{- $u := urlParse .Values.publicUrl -}}
{{- if or (not (has $u.scheme (list "http" "https"))) (eq $u.host "") -}}
{{- fail (printf "publicUrl must be http(s)://host, got %q" .Values.publicUrl) -}}
{{- end -}}
{{- if not (has $u.path (list "" "/")) -}}
{{- fail (printf "publicUrl must have no path (the portal serves at the root), got %q" .Values.publicUrl) -}}
{{- end -}}
{{- $budget := add .Values.preStopSleepSeconds .Values.config.shutdownGraceSeconds -}}
{{- if ge (int $budget) (int .Values.terminationGracePeriodSeconds) -}}
{{- fail (printf "preStopSleepSeconds (%d) + config.shutdownGraceSeconds (%d) must be below terminationGracePeriodSeconds (%d), or the pod is killed while draining" (int .Values.preStopSleepSeconds) (int .Values.config.shutdownGraceSeconds) (int .Values.terminationGracePeriodSeconds)) -}}
{{- end -}}
{{- if and .Values.metrics.enabled (eq (int .Values.metrics.port) (int .Values.containerPort)) -}}
{{- fail "metrics.port must differ from containerPort: metrics have a listener of their own" -}}
{{- end -}}
{{- end -}}

{{/* The pod's volumes (a writable /tmp on the read-only root) and extras. */}}
{{- define "portal.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "portal.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The portal's pods (not the migration Job's): what the Service, the PDB and the
     anti-affinity select. */}}
{{- define "portal.webSelectorLabels" -}}
{{ include "portal.selectorLabels" . }}
app.kubernetes.io/component: web
{{- end -}}
