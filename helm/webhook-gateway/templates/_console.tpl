{{/* The operator console (`gateway console`): its container, Secret name and checks. */}}

{{- define "webhook-gateway.consoleSecretName" -}}
{{- tpl .Values.console.tokens.secretName . }}
{{- end }}

{{/* Mount of the console's token files, in every gateway pod (they all load the config). */}}
{{- define "webhook-gateway.consoleMount" -}}
{{- if .Values.console.enabled }}
- name: console-tokens
  mountPath: {{ trimSuffix "/" .Values.console.tokens.mountPath }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "webhook-gateway.consoleVolume" -}}
{{- if .Values.console.enabled }}
- name: console-tokens
  secret:
    secretName: {{ include "webhook-gateway.consoleSecretName" . }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{/*
Refuses a console the gateway would not start: console.enabled without `kafka.journal_topic`
or a `console:` section with users in the config.
*/}}
{{- define "webhook-gateway.checkConsole" -}}
{{- $cfg := include "webhook-gateway.configData" . | fromJson }}
{{- $kafka := default dict $cfg.kafka }}
{{- if not (get $kafka "journal_topic") }}
{{- fail "console.enabled=true but the gateway config (value `config`) sets no `kafka.journal_topic`: nothing would feed the console" }}
{{- end }}
{{- $console := $cfg.console }}
{{- if or (not (kindIs "map" $console)) (not (get $console "users")) }}
{{- fail "console.enabled=true but the gateway config has no `console:` section with `users`: nobody could log in" }}
{{- end }}
{{- end }}

{{- define "webhook-gateway.consoleContainer" -}}
{{- $c := .Values.console -}}
- name: console
  image: {{ include "webhook-gateway.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - console
    - --config
    - {{ include "webhook-gateway.configPath" . }}
    - --listen
    - {{ printf "0.0.0.0:%v" $c.port | quote }}
  ports:
    - name: console
      containerPort: {{ $c.port }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /healthz
      port: console
    {{- toYaml $c.probes.startup | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: console
    {{- toYaml $c.probes.liveness | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: console
    {{- toYaml $c.probes.readiness | nindent 4 }}
  resources:
    {{- toYaml $c.resources | nindent 4 }}
{{- end }}
