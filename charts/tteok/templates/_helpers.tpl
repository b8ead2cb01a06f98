{{/*
Names, labels and shared snippets, in the style of the bitnami and
ingress-nginx charts. Every resource carries the app.kubernetes.io/* labels;
selectors use only name, instance and component (immutable on upgrade).
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "tteok.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The resource name prefix: fullnameOverride, else <release>-<name>, else the
release name alone when it already contains the chart name. 63 characters at
most minus room for the longest component suffix ("-ingest-headless").
*/}}
{{- define "tteok.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 47 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 47 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 47 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* <fullname>-<component>; call with (dict "context" $ "component" "ingest"). */}}
{{- define "tteok.componentName" -}}
{{- printf "%s-%s" (include "tteok.fullname" .context) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tteok.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tteok.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource; call with (dict "context" $ "component" "ingest"), component optional. */}}
{{- define "tteok.labels" -}}
helm.sh/chart: {{ include "tteok.chart" .context }}
{{ include "tteok.selectorLabels" . }}
app.kubernetes.io/version: {{ .context.Values.image.tag | default .context.Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
app.kubernetes.io/part-of: tteok
{{- with .context.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels; call with (dict "context" $ "component" "ingest"), component optional. */}}
{{- define "tteok.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tteok.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{/* commonAnnotations merged with the resource's own; call with (dict "context" $ "annotations" .extra). Empty when both are. */}}
{{- define "tteok.annotations" -}}
{{- $all := merge (deepCopy (.annotations | default dict)) (.context.Values.commonAnnotations | default dict) -}}
{{- if $all }}
annotations:
  {{- toYaml $all | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The image reference: registry/repository, then @digest or :tag (default appVersion). */}}
{{- define "tteok.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository -}}{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* Service account name of a component; call with (dict "context" $ "component" "ingest"). */}}
{{- define "tteok.serviceAccountName" -}}
{{- $sa := (index .context.Values .component).serviceAccount -}}
{{- if $sa.create -}}
{{- default (include "tteok.componentName" .) $sa.name -}}
{{- else -}}
{{- default "default" $sa.name -}}
{{- end -}}
{{- end -}}

{{/* The shared settings ConfigMap's name. */}}
{{- define "tteok.configName" -}}
{{- include "tteok.componentName" (dict "context" . "component" "config") -}}
{{- end -}}

{{/*
Environment every component gets: the pod's own name and namespace through the
downward API, and the shared settings ConfigMap.
*/}}
{{- define "tteok.podEnv" -}}
- name: TTEOK_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: TTEOK_POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end -}}

{{- define "tteok.envFrom" -}}
- configMapRef:
    name: {{ include "tteok.configName" . }}
{{- end -}}

{{/*
Static S3 credentials from an existing Secret, for the components that write
or delete objects (ingest, controller). Nothing when the SDK's default chain is
used (IRSA, workload identity, instance role).
*/}}
{{- define "tteok.s3CredentialsEnv" -}}
{{- with .Values.s3.credentials.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.s3.credentials.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.s3.credentials.secretAccessKeyKey }}
{{- end }}
{{- end -}}

{{/* Probes; call with (dict "probe" .Values.x.livenessProbe "path" "/healthz"). */}}
{{- define "tteok.httpProbe" -}}
httpGet:
  path: {{ .path }}
  port: http
initialDelaySeconds: {{ .probe.initialDelaySeconds }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
successThreshold: 1
{{- end -}}

{{/* A writable /tmp for read-only root filesystems. */}}
{{- define "tteok.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{/* The checksum of the settings ConfigMap: a change rolls every component. */}}
{{- define "tteok.configChecksum" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end -}}

{{/* Whether RBAC for LiveStreams and key Secrets is namespaced (watchNamespace set). */}}
{{- define "tteok.rbacKind" -}}
{{- if .Values.watchNamespace -}}Role{{- else -}}ClusterRole{{- end -}}
{{- end -}}

{{/*
Fails the render with a message naming the value, for what the schema cannot
express across values.
*/}}
{{- define "tteok.validateValues" -}}
{{- if not .Values.s3.bucket -}}
{{- fail "s3.bucket is required: the bucket the ingest stores HLS into (manifests/aws/cloudformation.yaml creates one)" -}}
{{- end -}}
{{- if not .Values.cdn.baseUrl -}}
{{- fail "cdn.baseUrl is required: the CDN URL in front of the bucket, e.g. https://d1234abcd.cloudfront.net" -}}
{{- end -}}
{{- if ge (int .Values.ingest.shutdownTimeoutSeconds) (int .Values.ingest.terminationGracePeriodSeconds) -}}
{{- fail (printf "ingest.shutdownTimeoutSeconds (%v) must be less than ingest.terminationGracePeriodSeconds (%v): the ingest needs the difference to end streams and exit before it is killed" .Values.ingest.shutdownTimeoutSeconds .Values.ingest.terminationGracePeriodSeconds) -}}
{{- end -}}
{{- if ge (float64 .Values.ingest.takeoverSilenceSeconds) (float64 .Values.ingest.publisherIdleSeconds) -}}
{{- fail (printf "ingest.takeoverSilenceSeconds (%v) must be less than ingest.publisherIdleSeconds (%v): a silent publisher must still be connected to be taken over" .Values.ingest.takeoverSilenceSeconds .Values.ingest.publisherIdleSeconds) -}}
{{- end -}}
{{- if lt (mulf (float64 .Values.ingest.publishLimits.maxFragmentMiB) 1048576.0) (mulf (float64 .Values.ingest.rtmp.maxMessageBytes) 2.0) -}}
{{- fail (printf "ingest.publishLimits.maxFragmentMiB (%v) must hold at least two of the largest RTMP messages (ingest.rtmp.maxMessageBytes %v): a segment holds a keyframe and what follows it" .Values.ingest.publishLimits.maxFragmentMiB (int64 .Values.ingest.rtmp.maxMessageBytes)) -}}
{{- end -}}
{{- if and .Values.ingest.autoscaling.enabled (lt (int .Values.ingest.autoscaling.maxReplicas) (int .Values.ingest.autoscaling.minReplicas)) -}}
{{- fail "ingest.autoscaling.maxReplicas must be at least ingest.autoscaling.minReplicas" -}}
{{- end -}}
{{- if .Values.controller.leaderElection.enabled -}}
{{- if ge (float64 .Values.controller.leaderElection.renewDeadlineSeconds) (float64 .Values.controller.leaderElection.leaseDurationSeconds) -}}
{{- fail "controller.leaderElection.renewDeadlineSeconds must be less than leaseDurationSeconds" -}}
{{- end -}}
{{- if ge (float64 .Values.controller.leaderElection.retryPeriodSeconds) (float64 .Values.controller.leaderElection.renewDeadlineSeconds) -}}
{{- fail "controller.leaderElection.retryPeriodSeconds must be less than renewDeadlineSeconds" -}}
{{- end -}}
{{- else if gt (int .Values.controller.replicas) 1 -}}
{{- fail "controller.replicas above 1 needs controller.leaderElection.enabled: two controllers would act at once" -}}
{{- end -}}
{{- with .Values.controller.webhooks -}}
{{- if and .url (not .existingSecret) (not .signingKey) -}}
{{- fail "controller.webhooks.url needs a signing key: controller.webhooks.existingSecret (or controller.webhooks.signingKey)" -}}
{{- end -}}
{{- if and .existingSecret .signingKey -}}
{{- fail "set controller.webhooks.existingSecret or controller.webhooks.signingKey, not both" -}}
{{- end -}}
{{- if lt (float64 .retryMaxSeconds) (float64 .retryInitialSeconds) -}}
{{- fail "controller.webhooks.retryMaxSeconds must be at least retryInitialSeconds" -}}
{{- end -}}
{{- end -}}
{{- with .Values.gateway -}}
{{- if gt (float64 .headersTimeoutMs) (float64 .requestTimeoutMs) -}}
{{- fail (printf "gateway.headersTimeoutMs (%d) must not be above gateway.requestTimeoutMs (%d): the headers are part of the request" (int64 .headersTimeoutMs) (int64 .requestTimeoutMs)) -}}
{{- end -}}
{{- if and (not (kindIs "invalid" .events.heartbeatMs)) (ge (float64 .events.heartbeatMs) (float64 .connectionTimeoutMs)) -}}
{{- fail (printf "gateway.events.heartbeatMs (%d) must be below gateway.connectionTimeoutMs (%d), or quiet event streams are cut" (int64 .events.heartbeatMs) (int64 .connectionTimeoutMs)) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.defaultRenditions (not .Values.transcoder.enabled) -}}
{{- fail "defaultRenditions needs transcoder.enabled: without transcoder pods nothing encodes them" -}}
{{- end -}}
{{- if and .Values.transcoder.autoscaling.enabled (lt (int .Values.transcoder.autoscaling.maxReplicas) (int .Values.transcoder.autoscaling.minReplicas)) -}}
{{- fail "transcoder.autoscaling.maxReplicas must be at least transcoder.autoscaling.minReplicas" -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled .Values.metrics.podMonitor.enabled -}}
{{- fail "enable metrics.serviceMonitor or metrics.podMonitor, not both: every target would be scraped twice" -}}
{{- end -}}
{{- end -}}
