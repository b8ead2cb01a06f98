{{/* The transcoder's image: transcoder.image.repository/tag where set, else the chart's image. */}}
{{- define "tteok.transcoderImage" -}}
{{- $t := .Values.transcoder.image -}}
{{- if or $t.repository $t.tag -}}
{{- $repo := $t.repository | default .Values.image.repository -}}
{{- if .Values.image.registry -}}{{- $repo = printf "%s/%s" .Values.image.registry $repo -}}{{- end -}}
{{- printf "%s:%s" $repo ($t.tag | default .Values.image.tag | default .Chart.AppVersion) -}}
{{- else -}}
{{- include "tteok.image" . -}}
{{- end -}}
{{- end -}}

{{/*
The transcoder's resources from its sizing: CPU requested for maxJobs jobs of
renditionsPerJob renditions at cpuPerRendition cores each (no CPU limit: a
throttled encoder falls behind the live edge), memory maxJobs × memoryPerJobMiB
+ 128Mi for the process, requested and limited alike. transcoder.resources
overrides it.
*/}}
{{- define "tteok.transcoderResources" -}}
{{- $t := .Values.transcoder -}}
{{- if $t.resources -}}
{{- toYaml $t.resources -}}
{{- else -}}
{{- $millicores := mulf (float64 $t.maxJobs) (float64 $t.renditionsPerJob) (float64 $t.cpuPerRendition) 1000.0 | ceil | int64 -}}
{{- $memory := add (mul (int64 $t.maxJobs) (int64 $t.memoryPerJobMiB)) 128 -}}
requests:
  cpu: {{ printf "%dm" $millicores }}
  memory: {{ printf "%dMi" $memory }}
limits:
  memory: {{ printf "%dMi" $memory }}
{{- end -}}
{{- end -}}

{{/* The URL the ingest reaches the transcoder Service at: transcoder.url, else the Service's DNS name. */}}
{{- define "tteok.transcoderUrl" -}}
{{- if .Values.transcoder.url -}}
{{- .Values.transcoder.url -}}
{{- else -}}
{{- printf "http://%s.%s.svc" (include "tteok.componentName" (dict "context" . "component" "transcoder")) (include "tteok.namespace" .) -}}
{{- end -}}
{{- end -}}
