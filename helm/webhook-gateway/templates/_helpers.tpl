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
{{- if .Values.spool.enabled }}
{{- $spoolDir := trimSuffix "/" .Values.spool.mountPath }}
{{- if has $spoolDir $mounts }}
{{- fail (printf "spool.mountPath %s clashes with configDir or /tmp" .Values.spool.mountPath) }}
{{- end }}
{{- $mounts = append $mounts $spoolDir }}
{{- end }}
{{- range .Values.secretFiles }}
{{- if has (trimSuffix "/" .mountPath) $mounts }}
{{- fail (printf "secretFiles: mountPath %s is used twice (or clashes with configDir, /tmp or spool.mountPath)" .mountPath) }}
{{- end }}
{{- $mounts = append $mounts (trimSuffix "/" .mountPath) }}
{{- end }}
{{- if .Values.referenceCheck }}
{{- $envNames := list }}
{{- range .Values.env }}{{ $envNames = append $envNames .name }}{{ end }}
{{- range .Values.secretEnv }}{{ $envNames = append $envNames .name }}{{ end }}
{{- with .Values.state.urlSecret }}{{ if .secretName }}{{ $envNames = append $envNames .envName }}{{ end }}{{ end }}
{{- range regexFindAll "\\$\\{env:[^}]*\\}" $text -1 }}
{{- $arg := trimSuffix "}" (trimPrefix "${env:" .) }}
{{- if and (not (contains ":-" $arg)) (not $.Values.envFrom) (not (has $arg $envNames)) }}
{{- fail (printf "config references %s but neither env nor secretEnv sets %s (add it to secretEnv or state.urlSecret, or set referenceCheck=false)" . $arg) }}
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
{{- if and $.Values.console.enabled (hasPrefix (printf "%s/" (trimSuffix "/" $.Values.console.tokens.mountPath)) $path) }}{{ $found = true }}{{ end }}
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
# How many serve replicas run (the HPA's maximum): the start-up log warns when state is per process.
- name: GATEWAY_REPLICAS
  value: {{ include "webhook-gateway.serveReplicas" . | quote }}
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
{{- with .Values.state.urlSecret }}
{{- if .secretName }}
- name: {{ .envName }}
  valueFrom:
    secretKeyRef:
      name: {{ tpl .secretName $ }}
      key: {{ .key }}
{{- end }}
{{- end }}
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Several `gateway serve --workers` processes share their Prometheus samples through files in an
emptyDir (prometheus-client's multiprocess mode), so /metrics aggregates the pod, whichever
process answers the scrape. "true" or empty; call with (dict "root" $ "component" "serve").
*/}}
{{- define "webhook-gateway.multiproc" -}}
{{- if and (eq .component "serve") (gt (int .root.Values.serve.workers) 1) }}true{{ end }}
{{- end }}

{{- define "webhook-gateway.multiprocDir" -}}
/var/run/gateway-metrics
{{- end }}

{{/* Mounts of every gateway container of one component; call with (dict "root" $ "component" "serve"). */}}
{{- define "webhook-gateway.volumeMounts" -}}
{{- $v := .root.Values -}}
- name: config
  mountPath: {{ trimSuffix "/" $v.configDir }}
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if and (eq .component "serve") $v.spool.enabled }}
- name: spool
  mountPath: {{ trimSuffix "/" $v.spool.mountPath }}
{{- end }}
{{- if include "webhook-gateway.multiproc" . }}
- name: metrics-multiproc
  mountPath: {{ include "webhook-gateway.multiprocDir" . }}
{{- end }}
{{- range $i, $f := $v.secretFiles }}
- name: secret-{{ $i }}
  mountPath: {{ trimSuffix "/" $f.mountPath }}
  readOnly: true
{{- end }}
{{- include "webhook-gateway.consoleMount" .root }}
{{- with $v.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Pod volumes of one component; call with (dict "root" $ "component" "serve"). The serve
StatefulSet's per-pod `spool` volume comes from its volumeClaimTemplates, not from here.
*/}}
{{- define "webhook-gateway.volumes" -}}
{{- $root := .root }}
{{- $v := $root.Values -}}
- name: config
  configMap:
    name: {{ include "webhook-gateway.fullname" $root }}-config
- name: tmp
  emptyDir:
    sizeLimit: {{ $v.tmpDir.sizeLimit }}
    {{- with $v.tmpDir.medium }}
    medium: {{ . }}
    {{- end }}
{{- if include "webhook-gateway.multiproc" . }}
- name: metrics-multiproc
  emptyDir:
    sizeLimit: 256Mi
{{- end }}
{{- if and (eq .component "serve") $v.spool.enabled $v.spool.existingClaim }}
- name: spool
  persistentVolumeClaim:
    claimName: {{ tpl $v.spool.existingClaim $root }}
{{- end }}
{{- range $i, $f := $v.secretFiles }}
- name: secret-{{ $i }}
  secret:
    secretName: {{ tpl $f.secretName $root }}
    defaultMode: {{ $f.defaultMode }}
    {{- with $f.items }}
    items:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end }}
{{- include "webhook-gateway.consoleVolume" $root }}
{{- with $v.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The pod template of one workload (Deployment or StatefulSet). Call with
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
  terminationGracePeriodSeconds: {{ (ternary $v.worker.shutdown $v.shutdown (eq .component "worker")).terminationGracePeriodSeconds }}
  {{- if $v.configCheck.enabled }}
  initContainers:
    - name: config-check
      image: {{ include "webhook-gateway.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      args:
        - check
        - --config
        - {{ include "webhook-gateway.configPath" $root }}
        {{- if eq .component "serve" }}
        # So that `gateway check` warns when per-process state meets several processes.
        - --workers
        - {{ $v.serve.workers | quote }}
        - --replicas
        - {{ include "webhook-gateway.serveReplicas" $root | quote }}
        {{- end }}
      env:
        {{- include "webhook-gateway.env" $root | nindent 8 }}
        {{- if include "webhook-gateway.multiproc" . }}
        - name: PROMETHEUS_MULTIPROC_DIR
          value: {{ include "webhook-gateway.multiprocDir" . }}
        {{- end }}
      {{- with $v.envFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        {{- include "webhook-gateway.volumeMounts" . | nindent 8 }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      resources:
        {{- toYaml $v.configCheck.resources | nindent 8 }}
  {{- end }}
  containers:
    {{- .container | nindent 4 }}
      env:
        {{- include "webhook-gateway.env" $root | nindent 8 }}
        {{- if include "webhook-gateway.multiproc" . }}
        - name: PROMETHEUS_MULTIPROC_DIR
          value: {{ include "webhook-gateway.multiprocDir" . }}
        {{- end }}
      {{- with $v.envFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        {{- include "webhook-gateway.volumeMounts" . | nindent 8 }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
  volumes:
    {{- include "webhook-gateway.volumes" . | nindent 4 }}
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

{{/* The spool. */}}

{{/* Kind of the serve workload: a StatefulSet when the pods keep a spool on a volume. */}}
{{- define "webhook-gateway.serveKind" -}}
{{- if .Values.spool.enabled }}StatefulSet{{ else }}Deployment{{ end }}
{{- end }}

{{/*
Bytes in a Kubernetes quantity such as 2Gi, 500M or 1073741824; empty when the quantity has
a fraction, an exponent or a suffix above T (the size check below then does not apply).
*/}}
{{- define "webhook-gateway.quantityBytes" -}}
{{- $q := toString . }}
{{- if regexMatch "^[0-9]+(k|M|G|T|Ki|Mi|Gi|Ti)?$" $q }}
{{- $digits := regexFind "^[0-9]+" $q }}
{{- $factor := get (dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776) (trimPrefix $digits $q) }}
{{- mul (int64 $digits) (int64 $factor) }}
{{- end }}
{{- end }}

{{/*
Refuses to render a spool the pods could not use: spool.enabled without a `spool:` section in
the config, a spool path outside spool.mountPath, a volume no bigger than the spool's
max_bytes, one existing claim shared by several replicas; and a `spool:` section with
spool.enabled=false whose path no writable volume holds (the root filesystem is read-only).
*/}}
{{- define "webhook-gateway.checkSpool" -}}
{{- $s := .Values.spool }}
{{- $cfg := include "webhook-gateway.configData" . | fromJson }}
{{- $section := $cfg.spool }}
{{- $path := "" }}
{{- if kindIs "map" $section }}{{ $path = toString (default "" $section.path) }}{{ end }}
{{- $dir := trimSuffix "/" (clean $s.mountPath) }}
{{- if $s.enabled }}
{{- if not (kindIs "map" $section) }}
{{- fail (printf "spool.enabled=true but the gateway config (value `config`) has no `spool:` section, so the gateway would never use the volume: add `spool: {path: %s/spool.db}` to it, or set spool.enabled=false" $dir) }}
{{- end }}
{{- if not (hasPrefix (printf "%s/" $dir) (clean $path)) }}
{{- fail (printf "the config's spool.path (%q) is not under spool.mountPath (%s): the spool would land on the read-only root filesystem. Use a literal path such as %s/spool.db" $path $dir $dir) }}
{{- end }}
{{- if $s.existingClaim }}
{{- $sv := .Values.serve }}
{{- if or $sv.autoscaling.enabled (gt (int $sv.replicaCount) 1) }}
{{- fail (printf "spool.existingClaim (%s) is one volume for every serve pod, so it needs serve.replicaCount <= 1 and serve.autoscaling.enabled=false (got replicaCount=%v, autoscaling.enabled=%v). Leave existingClaim empty to give each replica its own claim" $s.existingClaim $sv.replicaCount $sv.autoscaling.enabled) }}
{{- end }}
{{- else }}
{{- /* The gateway's default max_bytes; a `${env:...}` value cannot be checked here. */}}
{{- $maxBytes := get $section "max_bytes" | default 1073741824 }}
{{- $size := include "webhook-gateway.quantityBytes" $s.size }}
{{- if and $size (not (kindIs "string" $maxBytes)) (le (int64 $size) (int64 $maxBytes)) }}
{{- fail (printf "spool.size (%v = %s bytes) must exceed the config's spool.max_bytes (%v): SQLite's WAL and the filesystem need room beyond it, or the disk fills before the spool reports full" $s.size $size (int64 $maxBytes)) }}
{{- end }}
{{- end }}
{{- else if $path }}
{{- $writable := list "/tmp" }}
{{- range .Values.extraVolumeMounts }}
{{- if not .readOnly }}{{ $writable = append $writable (trimSuffix "/" .mountPath) }}{{ end }}
{{- end }}
{{- $found := false }}
{{- range $writable }}
{{- if hasPrefix (printf "%s/" .) (clean $path) }}{{ $found = true }}{{ end }}
{{- end }}
{{- if not $found }}
{{- fail (printf "the config has a `spool:` section (path %q) but spool.enabled=false: the gateway could not create it on the read-only root filesystem. Set spool.enabled=true (a PersistentVolumeClaim per serve pod) or remove the section" $path) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The worker. */}}

{{/*
Seconds `gateway worker --port` itself allows for shutting down: uvicorn's graceful window
(timeout_graceful_shutdown in gateway/cli.py). worker.shutdown.drainSeconds may not be
shorter. The delivery workers stop in the app's lifespan shutdown, which uvicorn runs once
open requests are done (at once for probes and scrapes): their grace (at most 30s) plus up
to 10s to commit and leave the group is what the default drainSeconds (45) covers.
*/}}
{{- define "webhook-gateway.workerShutdownSeconds" -}}
35
{{- end }}

{{/* Whether the worker pods serve HTTP (health, readiness, metrics). */}}
{{- define "webhook-gateway.workerHttp" -}}
{{- if and .Values.worker.enabled .Values.worker.httpEnabled }}true{{ end }}
{{- end }}

{{/*
Refuses a worker grace period the kubelet would cut short: the pod must outlast the preStop
sleep plus the drain budget, and that budget must cover the worker's own shutdown window.
*/}}
{{- define "webhook-gateway.checkWorkerShutdown" -}}
{{- $sd := .Values.worker.shutdown }}
{{- $own := include "webhook-gateway.workerShutdownSeconds" . | int }}
{{- if lt (int $sd.drainSeconds) $own }}
{{- fail (printf "worker.shutdown.drainSeconds (%v) must be at least %d, the graceful shutdown window of `gateway worker` itself: the kubelet would kill workers still finishing in-flight deliveries" $sd.drainSeconds $own) }}
{{- end }}
{{- if le (int $sd.terminationGracePeriodSeconds) (add $sd.preStopSleepSeconds $sd.drainSeconds | int) }}
{{- fail (printf "worker.shutdown.terminationGracePeriodSeconds (%v) must exceed worker.shutdown.preStopSleepSeconds + worker.shutdown.drainSeconds (%v): the kubelet would kill workers still finishing deliveries" $sd.terminationGracePeriodSeconds (add $sd.preStopSleepSeconds $sd.drainSeconds)) }}
{{- end }}
{{- end }}

{{/* The most serve replicas there can be (the HPA's maximum when autoscaling). */}}
{{- define "webhook-gateway.serveReplicas" -}}
{{- $s := .Values.serve }}
{{- if $s.autoscaling.enabled }}{{ $s.autoscaling.maxReplicas | int }}{{ else }}{{ $s.replicaCount | int }}{{ end }}
{{- end }}
