{{/* The main container of each Deployment; env, mounts and security context are added by podTemplate. */}}

{{- define "webhook-gateway.serveContainer" -}}
{{- $s := .Values.serve -}}
- name: gateway
  image: {{ include "webhook-gateway.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - serve
    - --config
    - {{ include "webhook-gateway.configPath" . }}
    - --host
    - 0.0.0.0
    - --port
    - {{ .Values.containerPort | quote }}
    - --workers
    - {{ $s.workers | quote }}
    {{- range $s.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  ports:
    - name: http
      containerPort: {{ .Values.containerPort }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /healthz
      port: http
    {{- toYaml $s.probes.startup | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: http
    {{- toYaml $s.probes.liveness | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: http
    {{- toYaml $s.probes.readiness | nindent 4 }}
  lifecycle:
    preStop:
      exec:
        command: ["sleep", {{ .Values.shutdown.preStopSleepSeconds | quote }}]
  resources:
    {{- toYaml $s.resources | nindent 4 }}
{{- end }}

{{- define "webhook-gateway.workerContainer" -}}
{{- $w := .Values.worker -}}
- name: gateway
  image: {{ include "webhook-gateway.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - worker
    - --config
    - {{ include "webhook-gateway.configPath" . }}
    {{- if $w.httpEnabled }}
    - --host
    - 0.0.0.0
    - --port
    - {{ $w.port | quote }}
    {{- end }}
    {{- range $w.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  {{- if $w.httpEnabled }}
  ports:
    - name: metrics
      containerPort: {{ $w.port }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /healthz
      port: metrics
    {{- toYaml $w.probes.startup | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: metrics
    {{- toYaml $w.probes.liveness | nindent 4 }}
  # Ready once the producer is connected and the consumer reads the delivery queue: a
  # rollout replaces an old worker only when its successor consumes.
  readinessProbe:
    httpGet:
      path: /readyz
      port: metrics
    {{- toYaml $w.probes.readiness | nindent 4 }}
  {{- end }}
  {{- with $w.shutdown.preStopSleepSeconds }}
  lifecycle:
    preStop:
      exec:
        command: ["sleep", {{ . | quote }}]
  {{- end }}
  resources:
    {{- toYaml $w.resources | nindent 4 }}
{{- end }}
