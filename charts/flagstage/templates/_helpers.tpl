{{/*
Names, labels and images shared by every template. Kubernetes limits names and label values to
63 characters, so everything derived from the release name is cut there.
*/}}

{{/* The chart's name, or nameOverride. */}}
{{- define "flagstage.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The base name of the release's objects. A release whose name already contains the chart's
name is not repeated ("flagstage" rather than "flagstage-flagstage").
*/}}
{{- define "flagstage.fullname" -}}
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

{{/* The names of the app's objects; the suffix survives truncation so the two never clash. */}}
{{- define "flagstage.app.fullname" -}}
{{- printf "%s-app" (include "flagstage.fullname" . | trunc 59 | trimSuffix "-") }}
{{- end }}

{{/* The operator's metrics Service; a Service name is a DNS label of at most 63 characters. */}}
{{- define "flagstage.metrics.fullname" -}}
{{- printf "%s-metrics" (include "flagstage.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/* The namespace every namespaced object of the release goes to. */}}
{{- define "flagstage.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Chart name and version, as the helm.sh/chart label wants them. */}}
{{- define "flagstage.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the release; component labels are added per object. */}}
{{- define "flagstage.labels" -}}
helm.sh/chart: {{ include "flagstage.chart" . }}
{{ include "flagstage.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: flagstage
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: they never change after install, because a Deployment's selector cannot. Each
workload adds its own app.kubernetes.io/component so the operator's and the app's selectors
never overlap.
*/}}
{{- define "flagstage.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flagstage.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "flagstage.operator.selectorLabels" -}}
{{ include "flagstage.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "flagstage.app.selectorLabels" -}}
{{ include "flagstage.selectorLabels" . }}
app.kubernetes.io/component: app
{{- end }}

{{/* The operator's ServiceAccount: the one the chart creates, or one brought by the user. */}}
{{- define "flagstage.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "flagstage.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}: a digest wins over a tag, and an empty tag
means the chart's appVersion, so upgrading the chart upgrades the image.
Call it with (dict "image" .Values.image "context" $).
*/}}
{{- define "flagstage.image" -}}
{{- $image := .image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default .context.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/*
The operator's command-line scope: the namespaces it watches, or all of them. An empty
watchNamespaces is the whole cluster, which is also what picks a ClusterRole over Roles.
*/}}
{{- define "flagstage.operator.scopeArgs" -}}
{{- if .Values.watchNamespaces }}
{{- range .Values.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- else }}
- --all-namespaces
{{- end }}
{{- end }}

{{/*
What the operator does with the API, and nothing more; the same rules go into a ClusterRole or
into one Role per watched namespace. Every rule is matched by a call in the operator or in kopf:
- featurerollouts: kopf lists and watches them; the operator writes nothing to a rollout but
  its status, and puts no finalizer on it.
- featurerollouts/status: the reconciler merge-patches the status it owns.
- featurerollouts/finalizers: the rendered ConfigMap names its rollout as owner with
  blockOwnerDeletion, which the OwnerReferencesPermissionEnforcement admission plugin checks.
- configmaps: read to compare, then server-side applied (which creates on first write).
- events (core v1): posted by the reconciler and by kopf.
- deployments, statefulsets: read, then the pod template's checksum annotation is patched for
  reloadStrategy Rolling.
kopf runs standalone with resource scanning off, so it needs no peering objects, namespaces
or CustomResourceDefinitions; leader election gets its own Role for its Lease.
*/}}
{{- define "flagstage.operator.rules" -}}
- apiGroups: ["flagstage.io"]
  resources: ["featurerollouts"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["flagstage.io"]
  resources: ["featurerollouts/status"]
  verbs: ["get", "patch"]
- apiGroups: ["flagstage.io"]
  resources: ["featurerollouts/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["get", "patch"]
{{- end }}

{{/* The webhook's Service, Secret and Issuer; the Service name is a DNS label. */}}
{{- define "flagstage.webhook.fullname" -}}
{{- printf "%s-webhook" (include "flagstage.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/* The host name the API server calls the webhook at, as the certificate must name it. */}}
{{- define "flagstage.webhook.host" -}}
{{- printf "%s.%s.svc" (include "flagstage.webhook.fullname" .) (include "flagstage.namespace" .) }}
{{- end }}

{{/*
The ValidatingWebhookConfiguration the operator fills in. The operator names it after the API
group and does not take the name as a flag, so it is one per cluster.
TODO: two releases with the webhook in one cluster would share this configuration; give each
its own name once the operator takes the name as a flag.
*/}}
{{- define "flagstage.webhook.configurationName" -}}
flagstage.flagstage.io
{{- end }}

{{/* Where the serving certificate, its key and the CA are mounted in the operator's pod. */}}
{{- define "flagstage.webhook.certDir" -}}
/etc/flagstage/webhook
{{- end }}

{{/*
What the operator needs to register its webhook: kopf first tries to create the configuration
(a conflict means it exists) and then patches its webhooks in, and empties them on shutdown.
Creating cannot be limited by name; patching is.
*/}}
{{- define "flagstage.webhook.rules" -}}
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["validatingwebhookconfigurations"]
  verbs: ["create"]
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["validatingwebhookconfigurations"]
  resourceNames: [{{ include "flagstage.webhook.configurationName" . | quote }}]
  verbs: ["patch"]
{{- end }}

{{/* The Lease the operator's replicas elect their holder over, in the operator's namespace. */}}
{{- define "flagstage.leaderElection.leaseName" -}}
{{- default (include "flagstage.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
What leader election needs: read and renew its own Lease, and create it on the first start.
Creating cannot be limited by name, the other two are.
*/}}
{{- define "flagstage.leaderElection.rules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["create"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  resourceNames: [{{ include "flagstage.leaderElection.leaseName" . | quote }}]
  verbs: ["get", "update"]
{{- end }}

{{/* The app's ServiceAccount, which only its `flagstage sync` sidecar holds a token of. */}}
{{- define "flagstage.app.serviceAccountName" -}}
{{- include "flagstage.app.fullname" . }}
{{- end }}

{{/*
What the sync sidecar needs: read the one ConfigMap, and list and watch it narrowed to its
name (a field selector on metadata.name), which the authorizer matches against resourceNames.
*/}}
{{- define "flagstage.app.syncRules" -}}
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: [{{ .Values.app.featuresConfigMap | quote }}]
  verbs: ["get", "list", "watch"]
{{- end }}
