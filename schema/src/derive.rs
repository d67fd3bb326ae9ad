//! Derived columns: facts about pods, bindings, roles and exec commands pulled out of the request
//! and response objects once at ingest, so that rules never parse JSON per event.

use serde::Deserialize;

use crate::model::{Raw, Str};

/// Everything derived from one event; `None` parts are null columns.
#[derive(Debug, Default, PartialEq)]
pub struct Derived {
    /// `pods/exec`: the decoded `command=` parameters joined by spaces.
    pub exec_command: Option<String>,
    /// A pod, or a workload's pod template.
    pub pod: Option<PodFacts>,
    /// A RoleBinding or ClusterRoleBinding.
    pub binding: Option<BindingFacts>,
    /// A Role or ClusterRole.
    pub role: Option<RoleFacts>,
}

/// What a pod spec asks for that matters to security.
#[derive(Debug, Default, PartialEq)]
#[allow(missing_docs)]
pub struct PodFacts {
    pub images: Vec<String>,
    pub privileged: bool,
    pub host_network: bool,
    pub host_pid: bool,
    pub host_ipc: bool,
    pub host_paths: Vec<String>,
    pub capabilities_added: Vec<String>,
    pub run_as_root: bool,
    pub allow_privilege_escalation: bool,
    pub service_account: Option<String>,
}

/// A binding's role and who it binds.
#[derive(Debug, Default, PartialEq)]
pub struct BindingFacts {
    /// `roleRef.name`.
    pub role_ref: Option<String>,
    /// `kind:namespace:name` of each subject.
    pub subjects: Vec<String>,
}

/// A role's rules, flattened.
#[derive(Debug, Default, PartialEq)]
pub struct RoleFacts {
    /// Union of `rules[].verbs`, first-seen order.
    pub verbs: Vec<String>,
    /// Union of `rules[].resources`, first-seen order.
    pub resources: Vec<String>,
}

/// The `objectRef` and objects of one event, as far as derivation needs them.
pub(crate) struct Source<'s> {
    pub verb: Option<&'s str>,
    pub request_uri: Option<&'s str>,
    pub resource: Option<&'s str>,
    pub subresource: Option<&'s str>,
    pub request_object: Option<&'s str>,
    pub response_object: Option<&'s str>,
}

const WORKLOADS: &[&str] = &[
    "deployments",
    "daemonsets",
    "statefulsets",
    "replicasets",
    "replicationcontrollers",
    "jobs",
    "cronjobs",
];

impl Source<'_> {
    pub(crate) fn derive(&self) -> Derived {
        let mut out = Derived::default();
        let Some(resource) = self.resource else {
            return out;
        };
        let relevant = match (resource, self.subresource) {
            ("pods", Some("exec")) => {
                out.exec_command = self.request_uri.and_then(exec_command);
                return out;
            }
            // Status updates from kubelets are most of all pod traffic and say nothing new about the
            // spec; ephemeral containers are a spec change that matters.
            ("pods", None | Some("ephemeralcontainers")) => true,
            (r, None) if WORKLOADS.contains(&r) => true,
            ("rolebindings" | "clusterrolebindings" | "roles" | "clusterroles", None) => true,
            _ => false,
        };
        if !relevant {
            return out;
        }
        // A patch body is partial: the object as stored (the response) is what was granted.
        let candidates = if self.verb == Some("patch") {
            [self.response_object, self.request_object]
        } else {
            [self.request_object, self.response_object]
        };
        for raw in candidates.into_iter().flatten() {
            if let Some(found) = from_object(raw) {
                match found {
                    Found::Pod(p) => out.pod = Some(p),
                    Found::Binding(b) => out.binding = Some(b),
                    Found::Role(r) => out.role = Some(r),
                }
                break;
            }
        }
        out
    }
}

enum Found {
    Pod(PodFacts),
    Binding(BindingFacts),
    Role(RoleFacts),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Object<'a> {
    #[serde(borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    spec: Option<Raw<'a>>,
    #[serde(borrow)]
    role_ref: Option<RoleRef<'a>>,
    #[serde(borrow)]
    subjects: Option<Vec<Subject<'a>>>,
    #[serde(borrow)]
    rules: Option<Vec<PolicyRule<'a>>>,
}

#[derive(Deserialize)]
struct RoleRef<'a> {
    #[serde(borrow)]
    name: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Subject<'a> {
    #[serde(borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    namespace: Option<Str<'a>>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct PolicyRule<'a> {
    #[serde(borrow)]
    verbs: Option<Vec<Str<'a>>>,
    #[serde(borrow)]
    resources: Option<Vec<Str<'a>>>,
}

#[derive(Deserialize)]
struct WorkloadSpec<'a> {
    #[serde(borrow)]
    template: Option<Template<'a>>,
    #[serde(borrow, rename = "jobTemplate")]
    job_template: Option<JobTemplate<'a>>,
}

#[derive(Deserialize)]
struct JobTemplate<'a> {
    #[serde(borrow)]
    spec: Option<Box<WorkloadSpec<'a>>>,
}

#[derive(Deserialize)]
struct Template<'a> {
    #[serde(borrow)]
    spec: Option<PodSpec<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodSpec<'a> {
    #[serde(borrow)]
    containers: Option<Vec<Container<'a>>>,
    #[serde(borrow)]
    init_containers: Option<Vec<Container<'a>>>,
    #[serde(borrow)]
    ephemeral_containers: Option<Vec<Container<'a>>>,
    host_network: Option<bool>,
    #[serde(rename = "hostPID")]
    host_pid: Option<bool>,
    #[serde(rename = "hostIPC")]
    host_ipc: Option<bool>,
    #[serde(borrow)]
    volumes: Option<Vec<Volume<'a>>>,
    #[serde(borrow)]
    service_account_name: Option<Str<'a>>,
    /// Deprecated alias of `serviceAccountName`, still sent by old clients.
    #[serde(borrow)]
    service_account: Option<Str<'a>>,
    security_context: Option<RunAs>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RunAs {
    run_as_user: Option<i64>,
    run_as_non_root: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Container<'a> {
    #[serde(borrow)]
    image: Option<Str<'a>>,
    #[serde(borrow)]
    security_context: Option<SecurityContext<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecurityContext<'a> {
    privileged: Option<bool>,
    allow_privilege_escalation: Option<bool>,
    run_as_user: Option<i64>,
    run_as_non_root: Option<bool>,
    #[serde(borrow)]
    capabilities: Option<Capabilities<'a>>,
}

#[derive(Deserialize)]
struct Capabilities<'a> {
    #[serde(borrow)]
    add: Option<Vec<Str<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Volume<'a> {
    #[serde(borrow)]
    host_path: Option<HostPath<'a>>,
}

#[derive(Deserialize)]
struct HostPath<'a> {
    #[serde(borrow)]
    path: Option<Str<'a>>,
}

/// Reads the facts of an object by its `kind`; objects of other kinds (lists, patches, Status)
/// give `None`. Malformed objects are not an error: the event is still stored, underived.
fn from_object(raw: &str) -> Option<Found> {
    let obj: Object<'_> = serde_json::from_str(raw).ok()?;
    match obj.kind.as_deref()? {
        "Pod" => {
            let spec: PodSpec<'_> = serde_json::from_str(obj.spec?.get()).ok()?;
            Some(Found::Pod(pod_facts(&spec)))
        }
        "Deployment"
        | "DaemonSet"
        | "StatefulSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job"
        | "CronJob" => {
            let spec: WorkloadSpec<'_> = serde_json::from_str(obj.spec?.get()).ok()?;
            let template = match spec.job_template {
                Some(JobTemplate { spec: Some(inner) }) => inner.template,
                _ => spec.template,
            };
            Some(Found::Pod(pod_facts(&template?.spec?)))
        }
        "RoleBinding" | "ClusterRoleBinding" => Some(Found::Binding(BindingFacts {
            role_ref: obj.role_ref.and_then(|r| r.name).map(Str::into_owned),
            subjects: obj
                .subjects
                .unwrap_or_default()
                .iter()
                .map(|s| {
                    format!(
                        "{}:{}:{}",
                        s.kind.as_deref().unwrap_or(""),
                        s.namespace.as_deref().unwrap_or(""),
                        s.name.as_deref().unwrap_or("")
                    )
                })
                .collect(),
        })),
        "Role" | "ClusterRole" => {
            let mut facts = RoleFacts::default();
            for rule in obj.rules.unwrap_or_default() {
                union_into(&mut facts.verbs, rule.verbs.unwrap_or_default());
                union_into(&mut facts.resources, rule.resources.unwrap_or_default());
            }
            Some(Found::Role(facts))
        }
        _ => None,
    }
}

fn union_into(into: &mut Vec<String>, items: Vec<Str<'_>>) {
    for item in items {
        if !into.iter().any(|have| **have == *item) {
            into.push(item.into_owned());
        }
    }
}

fn pod_facts(spec: &PodSpec<'_>) -> PodFacts {
    let pod_run_as = spec.security_context.as_ref();
    let mut facts = PodFacts {
        host_network: spec.host_network.unwrap_or(false),
        host_pid: spec.host_pid.unwrap_or(false),
        host_ipc: spec.host_ipc.unwrap_or(false),
        service_account: spec
            .service_account_name
            .as_deref()
            .or(spec.service_account.as_deref())
            .map(Into::into),
        ..PodFacts::default()
    };
    let lists = [
        &spec.containers,
        &spec.init_containers,
        &spec.ephemeral_containers,
    ];
    for container in lists.into_iter().flatten().flatten() {
        if let Some(image) = &container.image {
            facts.images.push(image.to_string());
        }
        let sc = container.security_context.as_ref();
        facts.privileged |= sc.and_then(|s| s.privileged).unwrap_or(false);
        facts.allow_privilege_escalation |= sc
            .and_then(|s| s.allow_privilege_escalation)
            .unwrap_or(false);
        // A container's own setting overrides the pod's.
        let user = sc
            .and_then(|s| s.run_as_user)
            .or(pod_run_as.and_then(|p| p.run_as_user));
        let non_root = sc
            .and_then(|s| s.run_as_non_root)
            .or(pod_run_as.and_then(|p| p.run_as_non_root));
        facts.run_as_root |= user == Some(0) || non_root == Some(false);
        if let Some(add) = sc
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|c| c.add.as_ref())
        {
            facts
                .capabilities_added
                .extend(add.iter().map(|c| c.to_string()));
        }
    }
    for volume in spec.volumes.iter().flatten() {
        if let Some(path) = volume.host_path.as_ref().and_then(|h| h.path.as_ref()) {
            facts.host_paths.push(path.to_string());
        }
    }
    facts
}

/// `command=` parameters of an exec URI, URL-decoded, joined by spaces.
fn exec_command(uri: &str) -> Option<String> {
    let query = uri.split_once('?')?.1;
    let parts: Vec<_> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v)
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source<'s>(
        verb: &'s str,
        resource: &'s str,
        sub: Option<&'s str>,
        req: &'s str,
    ) -> Source<'s> {
        Source {
            verb: Some(verb),
            request_uri: None,
            resource: Some(resource),
            subresource: sub,
            request_object: Some(req),
            response_object: None,
        }
    }

    #[test]
    fn exec_command_is_decoded_and_joined() {
        assert_eq!(
            exec_command(
                "/api/v1/namespaces/d/pods/p/exec?command=sh&command=-c&command=cat%20%2Fetc%2Fshadow&container=c&stdin=true"
            ),
            Some("sh -c cat /etc/shadow".into())
        );
        assert_eq!(
            exec_command("/api/v1/namespaces/d/pods/p/exec?command=ls+-la"),
            Some("ls -la".into())
        );
        assert_eq!(exec_command("/api/v1/namespaces/d/pods/p/exec"), None);
    }

    #[test]
    fn pod_facts_cover_all_container_lists() {
        let raw = r#"{"kind":"Pod","spec":{"hostPID":true,"securityContext":{"runAsUser":0},
          "containers":[{"image":"nginx","securityContext":{"runAsUser":1000}}],
          "initContainers":[{"image":"busybox","securityContext":{"capabilities":{"add":["SYS_ADMIN"]}}}],
          "ephemeralContainers":[{"image":"alpine","securityContext":{"privileged":true,"allowPrivilegeEscalation":true}}],
          "volumes":[{"hostPath":{"path":"/var/run/docker.sock"}},{"emptyDir":{}}],
          "serviceAccount":"legacy"}}"#;
        let pod = source("create", "pods", None, raw)
            .derive()
            .pod
            .expect("pod");
        assert_eq!(pod.images, ["nginx", "busybox", "alpine"]);
        assert!(
            pod.privileged && pod.host_pid && !pod.host_network && pod.allow_privilege_escalation
        );
        assert!(
            pod.run_as_root,
            "init container inherits runAsUser 0 from the pod"
        );
        assert_eq!(pod.host_paths, ["/var/run/docker.sock"]);
        assert_eq!(pod.capabilities_added, ["SYS_ADMIN"]);
        assert_eq!(pod.service_account.as_deref(), Some("legacy"));
    }

    #[test]
    fn workload_templates_and_cronjobs() {
        let raw = r#"{"kind":"CronJob","spec":{"jobTemplate":{"spec":{"template":{"spec":{"hostNetwork":true,"containers":[{"image":"x"}]}}}}}}"#;
        let pod = source("create", "cronjobs", None, raw)
            .derive()
            .pod
            .expect("pod");
        assert!(pod.host_network);
        assert_eq!(pod.images, ["x"]);
    }

    #[test]
    fn bindings_and_roles() {
        let raw = r#"{"kind":"ClusterRoleBinding","roleRef":{"kind":"ClusterRole","name":"cluster-admin"},
          "subjects":[{"kind":"ServiceAccount","namespace":"dev","name":"ci"},{"kind":"User","name":"bob"}]}"#;
        let b = source("create", "clusterrolebindings", None, raw)
            .derive()
            .binding
            .expect("binding");
        assert_eq!(b.role_ref.as_deref(), Some("cluster-admin"));
        assert_eq!(b.subjects, ["ServiceAccount:dev:ci", "User::bob"]);
        let raw = r#"{"kind":"Role","rules":[{"verbs":["get","list"],"resources":["secrets"]},{"verbs":["*"],"resources":["pods","secrets"]}]}"#;
        let r = source("create", "roles", None, raw)
            .derive()
            .role
            .expect("role");
        assert_eq!(r.verbs, ["get", "list", "*"]);
        assert_eq!(r.resources, ["secrets", "pods"]);
    }

    #[test]
    fn patches_are_judged_on_the_response() {
        let mut s = source(
            "patch",
            "clusterroles",
            None,
            r#"{"rules":[{"verbs":["*"],"resources":["*"]}]}"#,
        );
        s.response_object =
            Some(r#"{"kind":"ClusterRole","rules":[{"verbs":["get"],"resources":["nodes"]}]}"#);
        assert_eq!(s.derive().role.expect("role").verbs, ["get"]);
    }

    #[test]
    fn status_updates_and_lists_are_not_derived() {
        let raw = r#"{"kind":"Pod","spec":{"containers":[{"image":"x","securityContext":{"privileged":true}}]}}"#;
        assert_eq!(
            source("patch", "pods", Some("status"), raw).derive(),
            Derived::default()
        );
        assert_eq!(
            source("list", "pods", None, r#"{"kind":"PodList","items":[]}"#).derive(),
            Derived::default()
        );
    }
}
