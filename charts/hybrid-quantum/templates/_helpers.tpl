{{/*
Shared helpers. Names of the objects come from values (their defaults equal
hybrid_provider/constants.py); these helpers only add labels and small computations.
*/}}

{{- define "hq.chart" -}}
{{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name for the few objects that are per release (cluster-scoped RBAC, the hook Job). */}}
{{- define "hq.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}
{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end -}}
{{- end }}

{{- define "hq.labels" -}}
helm.sh/chart: {{ include "hq.chart" . }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hybrid-quantum
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select executor pods (the WorkflowTemplate sets them, the Service selects). */}}
{{- define "hq.executorSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/component: executor
{{- end }}

{{/* Labels that select the metrics exporter's pods. */}}
{{- define "hq.metricsSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: metrics
{{- end }}

{{/* Tenant namespaces as a JSON list: tenantNamespaces, or the release namespace. */}}
{{- define "hq.tenants" -}}
{{- if .Values.tenantNamespaces -}}
{{ toJson (uniq .Values.tenantNamespaces) }}
{{- else -}}
{{ toJson (list .Release.Namespace) }}
{{- end -}}
{{- end }}

{{- define "hq.airflowNamespace" -}}
{{ .Values.airflow.serviceAccount.namespace | default .Release.Namespace }}
{{- end }}

{{/*
A Kubernetes quantity from a value: strings are kept, whole numbers are printed without
a float exponent (Helm reads YAML numbers as float64: 1000000 would print as 1e+06).
*/}}
{{- define "hq.quantity" -}}
{{- if kindIs "string" . -}}
{{ . | quote }}
{{- else if and (kindIs "float64" .) (eq (float64 (int64 .)) .) -}}
{{ int64 . | toString | quote }}
{{- else -}}
{{ toString . | quote }}
{{- end -}}
{{- end }}

{{/* Resource name Kueue counts for a quota key (cpu, memory, gpu, qpu). */}}
{{- define "hq.resourceName" -}}
{{- $key := index . 0 -}}{{- $root := index . 1 -}}
{{- if eq $key "gpu" -}}{{ $root.Values.resources.gpu }}
{{- else if eq $key "qpu" -}}{{ $root.Values.resources.qpu }}
{{- else -}}{{ $key }}
{{- end -}}
{{- end }}

{{/*
The enabled quota entries of a ClusterQueue, as JSON: {"entries": [...], "keys": [...]}
where keys are the quota keys every flavor must cover, in Kueue's order.
*/}}
{{- define "hq.queueQuotas" -}}
{{- $cq := index . 0 -}}{{- $root := index . 1 -}}
{{- $entries := list -}}
{{- $hasGpu := false -}}{{- $hasQpu := false -}}
{{- range $cq.quotas -}}
{{- $flavor := index $root.Values.kueue.flavors .flavor -}}
{{- if $flavor.enabled -}}
{{- $entries = append $entries . -}}
{{- if hasKey . "gpu" }}{{ $hasGpu = true }}{{ end -}}
{{- if hasKey . "qpu" }}{{ $hasQpu = true }}{{ end -}}
{{- end -}}
{{- end -}}
{{- $keys := list "cpu" "memory" -}}
{{- if $hasGpu }}{{ $keys = append $keys "gpu" }}{{ end -}}
{{- if $hasQpu }}{{ $keys = append $keys "qpu" }}{{ end -}}
{{ toJson (dict "entries" $entries "keys" $keys) }}
{{- end }}

{{/* Whether a ClusterQueue (by key) is rendered: Kueue on and at least one enabled flavor. */}}
{{- define "hq.queueEnabled" -}}
{{- $key := index . 0 -}}{{- $root := index . 1 -}}
{{- $cq := index $root.Values.kueue.clusterQueues $key -}}
{{- if and $root.Values.kueue.enabled $cq -}}
{{- $q := include "hq.queueQuotas" (list $cq $root) | fromJson -}}
{{- if $q.entries }}true{{ end -}}
{{- end -}}
{{- end }}

{{- define "hq.executorImage" -}}
{{ printf "%s:%s" .Values.executor.image.repository .Values.executor.image.tag }}
{{- end }}

{{- define "hq.executorGpuImage" -}}
{{ printf "%s:%s" .Values.executor.image.repository .Values.executor.image.gpuTag }}
{{- end }}

{{/* Container securityContext used for every container the chart controls. */}}
{{- define "hq.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Pod securityContext. */}}
{{- define "hq.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ int64 .Values.executor.runAsUser }}
runAsGroup: {{ int64 .Values.executor.runAsGroup }}
fsGroup: {{ int64 .Values.executor.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}
