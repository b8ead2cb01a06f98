{{/*
A `helm test` pod: the tteok image itself runs a few HTTP checks with Node's
fetch and exits 0 when each answered as expected (retried for up to
.Values.tests.timeoutSeconds, for a `helm test` right after the install), 1
with what it got otherwise. Least privilege: no service account token, non-root,
read-only root filesystem, no capabilities, nothing mounted.
Call with (dict "context" $ "name" "gateway" "checks" (list (dict "what" … "url" … "status" 200 "contains" …))).
*/}}
{{- define "tteok.testPod" -}}
{{- $ := .context }}
apiVersion: v1
kind: Pod
metadata:
  name: {{ include "tteok.fullname" $ }}-test-{{ .name }}
  namespace: {{ include "tteok.namespace" $ }}
  labels:
    {{- include "tteok.labels" (dict "context" $ "component" (printf "test-%s" .name)) | nindent 4 }}
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: before-hook-creation
    {{- with $.Values.commonAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- with $.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    runAsGroup: 10001
    seccompProfile:
      type: RuntimeDefault
  {{- with $.Values.tests.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $.Values.tests.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: check
      image: {{ include "tteok.image" $ }}
      imagePullPolicy: {{ $.Values.image.pullPolicy }}
      command: ["node", "--input-type=module", "-e"]
      args:
        - |
          const checks = JSON.parse(process.env.CHECKS);
          const deadline = Date.now() + Number(process.env.TIMEOUT_SECONDS) * 1000;
          for (const c of checks) {
            for (;;) {
              let got;
              try {
                const res = await fetch(c.url, { signal: AbortSignal.timeout(5000) });
                const body = await res.text();
                got = `${res.status} ${body.slice(0, 300)}`;
                if (res.status === c.status && body.includes(c.contains)) {
                  console.log(`ok: ${c.what}: GET ${c.url} answered ${got}`);
                  break;
                }
              } catch (error) {
                got = String(error.cause?.code ?? error.message);
              }
              if (Date.now() > deadline) {
                console.error(`FAILED: ${c.what}: GET ${c.url} answered ${got}; expected ${c.status} with ${JSON.stringify(c.contains)}`);
                process.exit(1);
              }
              await new Promise((resolve) => setTimeout(resolve, 2000));
            }
          }
      env:
        - name: CHECKS
          value: {{ toJson .checks | quote }}
        - name: TIMEOUT_SECONDS
          value: {{ $.Values.tests.timeoutSeconds | quote }}
      resources:
        {{- toYaml $.Values.tests.resources | nindent 8 }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        allowPrivilegeEscalation: false
        privileged: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: [ALL]
{{- end -}}
