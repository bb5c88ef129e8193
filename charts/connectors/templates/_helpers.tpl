{{- define "connectors.labels" -}}
app.kubernetes.io/name: connectors
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "connectors.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* What the operator does, verb by verb; shared by the ClusterRole and the Roles. */}}
{{- define "connectors.namespacedRules" -}}
# Connections and Credentials: watched, and their status written. Never edited.
- apiGroups: ["connectors.dev"]
  resources: ["connections", "credentials"]
  verbs: ["list", "watch"]
- apiGroups: ["connectors.dev"]
  resources: ["connections/status", "credentials/status"]
  verbs: ["patch"]
# Generated credentials (create once, replace on rotation), account tables and
# host keys (server-side apply), user Secrets named by secretRef (get). RBAC
# cannot grant by label, so list and watch cover every Secret; the operator
# only ever lists and watches with labelSelector=app.kubernetes.io/managed-by=
# connectors-operator (controller/watches.py), so the API server sends it its
# own Secrets only, and those it is asked about by name are read with get.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# Children are written by server-side apply: a PATCH, which the API server
# authorizes as `create` when the object does not exist yet, and `patch` after.
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Finished transfer Jobs and their pods' termination messages: lastTransfer.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch"]
# ...and the listener pods' readiness: Ready means a partner could succeed now.
# patch: an annotation on a listener pod makes the kubelet load a changed
# account table at once rather than at its next periodic sync.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "patch"]
# The data volume claim: made once; read to explain a listener that cannot start.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["create", "get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# The listener's identity in each namespace that runs a listener.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["create", "patch"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["rolebindings"]
  verbs: ["create", "patch"]
{{- if .Values.peering.enabled }}
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["list", "watch", "patch", "get"]
{{- end }}
{{- end -}}
