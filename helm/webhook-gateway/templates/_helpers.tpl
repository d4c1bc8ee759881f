{{/* Names and labels. */}}

{{- define "webhook-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "webhook-gateway.fullname" -}}
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

{{- define "webhook-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "webhook-gateway.labels" -}}
helm.sh/chart: {{ include "webhook-gateway.chart" . }}
app.kubernetes.io/name: {{ include "webhook-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: webhook-gateway
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component; call with (dict "root" $ "component" "serve"). */}}
{{- define "webhook-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "webhook-gateway.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "webhook-gateway.componentName" -}}
{{- printf "%s-%s" (include "webhook-gateway.fullname" .root | trunc 56 | trimSuffix "-") .component }}
{{- end }}

{{- define "webhook-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "webhook-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "webhook-gateway.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The gateway config. */}}

{{/* The config file's text, exactly as mounted. */}}
{{- define "webhook-gateway.configText" -}}
{{- .Values.config }}
{{- end }}

{{/* The config parsed (for NOTES and the reference check); fails on invalid YAML. */}}
{{- define "webhook-gateway.configData" -}}
{{- $data := include "webhook-gateway.configText" . | fromYaml }}
{{- if hasKey $data "Error" }}
{{- fail (printf "config is not valid YAML: %s" (get $data "Error")) }}
{{- end }}
{{- toJson $data }}
{{- end }}

{{- define "webhook-gateway.configPath" -}}
{{- printf "%s/gateway.yaml" (trimSuffix "/" .Values.configDir) }}
{{- end }}

{{/*
Refuses to render when a `${env:NAME}` (without `:-default`) or `${file:/path}` reference in
the config has no provider in the pod spec, and when two mounts share a path. Catches at
`helm upgrade` what would otherwise be an init container crash loop.
*/}}
{{- define "webhook-gateway.checkReferences" -}}
{{- $text := include "webhook-gateway.configText" . }}
{{- $mounts := list (trimSuffix "/" .Values.configDir) "/tmp" }}
{{- range .Values.secretFiles }}
{{- if has (trimSuffix "/" .mountPath) $mounts }}
{{- fail (printf "secretFiles: mountPath %s is used twice (or clashes with configDir or /tmp)" .mountPath) }}
{{- end }}
{{- $mounts = append $mounts (trimSuffix "/" .mountPath) }}
{{- end }}
{{- if .Values.referenceCheck }}
{{- $envNames := list }}
{{- range .Values.env }}{{ $envNames = append $envNames .name }}{{ end }}
{{- range .Values.secretEnv }}{{ $envNames = append $envNames .name }}{{ end }}
{{- range regexFindAll "\\$\\{env:[^}]*\\}" $text -1 }}
{{- $arg := trimSuffix "}" (trimPrefix "${env:" .) }}
{{- if and (not (contains ":-" $arg)) (not $.Values.envFrom) (not (has $arg $envNames)) }}
{{- fail (printf "config references %s but neither env nor secretEnv sets %s (add it to secretEnv, or set referenceCheck=false)" . $arg) }}
{{- end }}
{{- end }}
{{- range regexFindAll "\\$\\{file:[^}]*\\}" $text -1 }}
{{- $path := trimSuffix "}" (trimPrefix "${file:" .) }}
{{- $found := false }}
{{- range $.Values.secretFiles }}
{{- $dir := trimSuffix "/" .mountPath }}
{{- if .items }}
{{- range .items }}
{{- if eq $path (printf "%s/%s" $dir .path) }}{{ $found = true }}{{ end }}
{{- end }}
{{- else if hasPrefix (printf "%s/" $dir) $path }}
{{- $found = true }}
{{- end }}
{{- end }}
{{- range $.Values.extraVolumeMounts }}
{{- if or (eq $path .mountPath) (hasPrefix (printf "%s/" (trimSuffix "/" .mountPath)) $path) }}{{ $found = true }}{{ end }}
{{- end }}
{{- if not $found }}
{{- fail (printf "config references %s but no secretFiles (or extraVolumeMounts) entry mounts that path (set referenceCheck=false to skip this check)" .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Pod parts shared by every gateway container. */}}

{{- define "webhook-gateway.env" -}}
- name: GATEWAY_CONFIG
  value: {{ include "webhook-gateway.configPath" . | quote }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- range .Values.secretEnv }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ tpl .secretName $ }}
      key: {{ .key }}
{{- end }}
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "webhook-gateway.volumeMounts" -}}
- name: config
  mountPath: {{ trimSuffix "/" .Values.configDir }}
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- range $i, $f := .Values.secretFiles }}
- name: secret-{{ $i }}
  mountPath: {{ trimSuffix "/" $f.mountPath }}
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "webhook-gateway.volumes" -}}
- name: config
  configMap:
    name: {{ include "webhook-gateway.fullname" . }}-config
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpDir.sizeLimit }}
    {{- with .Values.tmpDir.medium }}
    medium: {{ . }}
    {{- end }}
{{- range $i, $f := .Values.secretFiles }}
- name: secret-{{ $i }}
  secret:
    secretName: {{ tpl $f.secretName $ }}
    defaultMode: {{ $f.defaultMode }}
    {{- with $f.items }}
    items:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The pod template of one Deployment. Call with
(dict "root" $ "component" "serve" "container" <the main container as YAML text>).
*/}}
{{- define "webhook-gateway.podTemplate" -}}
{{- $root := .root }}
{{- $v := $root.Values -}}
metadata:
  labels:
    {{- include "webhook-gateway.selectorLabels" . | nindent 4 }}
    app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "webhook-gateway.configText" $root | sha256sum }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "webhook-gateway.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $v.serviceAccount.automountToken }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ $v.shutdown.terminationGracePeriodSeconds }}
  {{- if $v.configCheck.enabled }}
  initContainers:
    - name: config-check
      image: {{ include "webhook-gateway.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      args:
        - check
        - --config
        - {{ include "webhook-gateway.configPath" $root }}
      env:
        {{- include "webhook-gateway.env" $root | nindent 8 }}
      {{- with $v.envFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        {{- include "webhook-gateway.volumeMounts" $root | nindent 8 }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      resources:
        {{- toYaml $v.configCheck.resources | nindent 8 }}
  {{- end }}
  containers:
    {{- .container | nindent 4 }}
      env:
        {{- include "webhook-gateway.env" $root | nindent 8 }}
      {{- with $v.envFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        {{- include "webhook-gateway.volumeMounts" $root | nindent 8 }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
  volumes:
    {{- include "webhook-gateway.volumes" $root | nindent 4 }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- range . }}
    {{- $c := . }}
    {{- if not (hasKey $c "labelSelector") }}
    {{- $c = merge (dict "labelSelector" (dict "matchLabels" (include "webhook-gateway.selectorLabels" $ | fromYaml))) $c }}
    {{- end }}
    {{- toYaml (list $c) | nindent 4 }}
    {{- end }}
  {{- end }}
{{- end }}

{{/* HPA metrics; call with the component's autoscaling values. */}}
{{- define "webhook-gateway.hpaMetrics" -}}
{{- if not (kindIs "invalid" .targetCPUUtilizationPercentage) }}
- type: Resource
  resource:
    name: cpu
    target:
      type: Utilization
      averageUtilization: {{ .targetCPUUtilizationPercentage }}
{{- end }}
{{- if not (kindIs "invalid" .targetMemoryUtilizationPercentage) }}
- type: Resource
  resource:
    name: memory
    target:
      type: Utilization
      averageUtilization: {{ .targetMemoryUtilizationPercentage }}
{{- end }}
{{- end }}
