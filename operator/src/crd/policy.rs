//! Admission policies that CEL rules inside a CRD cannot express, because they need another
//! object: whether the namespace of a ToolServer or AgentTask belongs to a tenant, and to the
//! right one.
//!
//! The Tenant controller labels every namespace a Tenant claims `paddock.dev/tenant=<tenant>`.
//! These `ValidatingAdmissionPolicy` objects (admissionregistration.k8s.io/v1) read that label
//! through `namespaceObject`, so a ToolServer can only be created in a namespace of its own
//! tenant and no Paddock object can be created in an unclaimed namespace.
//!
//! The policies only judge creation and spec changes. Metadata-only updates (such as the
//! operator removing a finalizer after a namespace was released) always pass, so deletion
//! never gets stuck.

use k8s_openapi::{
    api::admissionregistration::v1::{
        MatchCondition, MatchResources, NamedRuleWithOperations, ValidatingAdmissionPolicy,
        ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicyBindingSpec,
        ValidatingAdmissionPolicySpec, Validation, Variable,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};

use super::{GROUP, TENANT_LABEL};

/// File the policies are committed under, in `crds/` and in the chart's `files/`.
pub const POLICY_FILE: &str = "admission-policy.yaml";

/// Name of the policy requiring a claimed namespace (ToolServers and AgentTasks).
pub const NAMESPACE_POLICY: &str = "paddock-tenant-namespace";
/// Name of the policy requiring a ToolServer's tenantRef to match its namespace's tenant.
pub const TENANT_REF_POLICY: &str = "paddock-toolserver-tenant-ref";

fn tenant_variable() -> Variable {
    Variable {
        name: "tenant".into(),
        expression: format!(
            "has(namespaceObject.metadata.labels) && '{TENANT_LABEL}' in namespaceObject.metadata.labels \
             ? namespaceObject.metadata.labels['{TENANT_LABEL}'] : ''"
        ),
    }
}

fn spec_written() -> MatchCondition {
    MatchCondition {
        name: "spec-created-or-changed".into(),
        expression: "request.operation == 'CREATE' || object.spec != oldObject.spec".into(),
    }
}

fn rules(resources: &[&str]) -> MatchResources {
    MatchResources {
        resource_rules: Some(vec![NamedRuleWithOperations {
            api_groups: Some(vec![GROUP.into()]),
            api_versions: Some(vec!["*".into()]),
            operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
            resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
            scope: Some("Namespaced".into()),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn labels() -> Option<std::collections::BTreeMap<String, String>> {
    Some([("app.kubernetes.io/part-of".to_owned(), "paddock".to_owned())].into())
}

fn binding(policy: &str) -> ValidatingAdmissionPolicyBinding {
    ValidatingAdmissionPolicyBinding {
        metadata: ObjectMeta {
            name: Some(policy.into()),
            labels: labels(),
            ..Default::default()
        },
        spec: Some(ValidatingAdmissionPolicyBindingSpec {
            policy_name: Some(policy.into()),
            validation_actions: Some(vec!["Deny".into()]),
            ..Default::default()
        }),
    }
}

/// The two policies and their bindings, in the order they are written to the file.
pub fn tenant_namespace_policies()
-> Vec<(ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding)> {
    let claimed = ValidatingAdmissionPolicy {
        metadata: ObjectMeta {
            name: Some(NAMESPACE_POLICY.into()),
            labels: labels(),
            ..Default::default()
        },
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            match_constraints: Some(rules(&["toolservers", "agenttasks"])),
            match_conditions: Some(vec![spec_written()]),
            variables: Some(vec![tenant_variable()]),
            validations: Some(vec![Validation {
                expression: "variables.tenant != ''".into(),
                message_expression: Some(
                    "'namespace ' + namespaceObject.metadata.name + ' is not claimed by any Tenant; \
                     add it to the spec.namespaces of a Tenant first'"
                        .into(),
                ),
                reason: Some("Forbidden".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    };
    let tenant_ref = ValidatingAdmissionPolicy {
        metadata: ObjectMeta {
            name: Some(TENANT_REF_POLICY.into()),
            labels: labels(),
            ..Default::default()
        },
        spec: Some(ValidatingAdmissionPolicySpec {
            failure_policy: Some("Fail".into()),
            match_constraints: Some(rules(&["toolservers"])),
            match_conditions: Some(vec![spec_written()]),
            variables: Some(vec![tenant_variable()]),
            // An unclaimed namespace is reported by the other policy; say it only once.
            validations: Some(vec![Validation {
                expression: "variables.tenant == '' || object.spec.tenantRef == variables.tenant".into(),
                message_expression: Some(
                    "'namespace ' + namespaceObject.metadata.name + ' belongs to Tenant ' + variables.tenant + \
                     ', not to ' + object.spec.tenantRef"
                        .into(),
                ),
                reason: Some("Forbidden".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    };
    vec![
        (claimed, binding(NAMESPACE_POLICY)),
        (tenant_ref, binding(TENANT_REF_POLICY)),
    ]
}
