"""The test control plane is a real one: API, controllers, garbage collection, RBAC."""

from __future__ import annotations

from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.conftest import Cluster
from tests.support.wait import eventually


def test_kubectl_lists_the_builtin_namespaces(cluster: Cluster) -> None:
    out = cluster.kubectl("get", "namespaces", "-o", "name").stdout.split()
    assert "namespace/default" in out
    assert "namespace/kube-system" in out


def test_server_reports_the_pinned_release(cluster: Cluster) -> None:
    version = client.VersionApi(cluster.api_client()).get_code()
    assert version.major == "1"
    assert int(version.minor.rstrip("+")) >= 35


def test_deployment_gets_a_replicaset_and_a_pending_pod(cluster: Cluster, namespace: str) -> None:
    apps = client.AppsV1Api(cluster.api_client())
    core = client.CoreV1Api(cluster.api_client())
    labels = {"app": "web"}
    apps.create_namespaced_deployment(namespace, client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx")]),
            ),
        ),
    ))
    replica_sets = eventually(
        lambda: apps.list_namespaced_replica_set(namespace).items, what="a ReplicaSet"
    )
    assert replica_sets[0].metadata.owner_references[0].name == "web"
    pods = eventually(lambda: core.list_namespaced_pod(namespace).items, what="a Pod")
    assert pods[0].metadata.owner_references[0].kind == "ReplicaSet"
    # No kubelet and no scheduler here: the pod exists but never runs.
    assert pods[0].status.phase == "Pending"


def test_garbage_collector_removes_orphans(cluster: Cluster, namespace: str) -> None:
    core = client.CoreV1Api(cluster.api_client())
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(
        name="child",
        owner_references=[client.V1OwnerReference(
            api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid,
        )],
    )))
    core.delete_namespaced_config_map("owner", namespace)

    def child_gone() -> bool:
        try:
            core.read_namespaced_config_map("child", namespace)
        except ApiException as error:
            return error.status == 404
        return False

    eventually(child_gone, what="the garbage collector to delete the child")


def test_rbac_refuses_a_service_account_until_a_role_binding_grants_it(
    cluster: Cluster, namespace: str
) -> None:
    core = client.CoreV1Api(cluster.api_client())
    rbac = client.RbacAuthorizationV1Api(cluster.api_client())
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    token = cluster.kubectl("create", "token", "reader", "-n", namespace).stdout.strip()
    assert token.count(".") == 2, "kubectl create token should print a JWT"

    def list_secrets() -> int:
        config = cluster.api_client().configuration
        anonymous = client.Configuration()
        anonymous.host = config.host
        anonymous.ssl_ca_cert = config.ssl_ca_cert
        anonymous.api_key = {"authorization": f"Bearer {token}"}
        try:
            client.CoreV1Api(client.ApiClient(anonymous)).list_namespaced_secret(namespace)
        except ApiException as error:
            return int(error.status)
        return 200

    assert list_secrets() == 403
    rbac.create_namespaced_role(namespace, client.V1Role(
        metadata=client.V1ObjectMeta(name="secret-reader"),
        rules=[client.V1PolicyRule(api_groups=[""], resources=["secrets"], verbs=["list"])],
    ))
    rbac.create_namespaced_role_binding(namespace, client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="secret-reader"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role",
                                  name="secret-reader"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)],
    ))
    # The authorizer's informer sees the new binding within moments.
    eventually(lambda: list_secrets() == 200, timeout=30, what="the RoleBinding to take effect")
