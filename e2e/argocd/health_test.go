// Package argocd tests the Argo CD health checks shipped in charts/paddock/argocd-health.yaml.
//
// Argo CD runs a health check from argocd-cm in gopher-lua, the interpreter used here: without the standard
// libraries (only base, package and table are opened), with the resource as the global `obj` (JSON objects as
// tables, arrays as 1-based tables), and it takes the returned table's `status` and `message`, accepting only
// its known status codes. Each case below is a status the operator writes, with the reasons its code sets.
package argocd

import (
	"os"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

const scriptsFile = "../../charts/paddock/argocd-health.yaml"

var validStatus = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

func scripts(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(scriptsFile)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]string
	if err := yaml.Unmarshal(raw, &data); err != nil {
		t.Fatalf("%s is not a map of strings: %v", scriptsFile, err)
	}
	return data
}

func script(t *testing.T, kind string) string {
	t.Helper()
	s, ok := scripts(t)["resource.customizations.health.paddock.dev_"+kind]
	if !ok {
		t.Fatalf("no health check for %s in %s", kind, scriptsFile)
	}
	return s
}

// toLua converts a decoded JSON value as Argo CD does.
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(toLua(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for k, item := range v {
			tbl.RawSetString(k, toLua(l, item))
		}
		return tbl
	}
	return lua.LNil
}

// health runs `src` on the object in `manifest` and returns the status and message it gives.
func health(t *testing.T, src, manifest string) (string, string) {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(manifest), &obj); err != nil {
		t.Fatal(err)
	}
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for name, open := range map[string]lua.LGFunction{
		lua.LoadLibName: lua.OpenPackage,
		lua.BaseLibName: lua.OpenBase,
		lua.TabLibName:  lua.OpenTable,
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(open), Protect: true}, lua.LString(name)); err != nil {
			t.Fatal(err)
		}
	}
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(src); err != nil {
		t.Fatalf("the script fails: %v", err)
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("the script returns %s, not a table", l.Get(-1).Type())
	}
	status := lua.LVAsString(ret.RawGetString("status"))
	if !validStatus[status] {
		t.Fatalf("status %q is not one Argo CD accepts", status)
	}
	return status, lua.LVAsString(ret.RawGetString("message"))
}

type tc struct {
	name, manifest, status, message string
}

func check(t *testing.T, kind string, cases []tc) {
	src := script(t, kind)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, message := health(t, src, c.manifest)
			if status != c.status || !strings.Contains(message, c.message) {
				t.Fatalf("got %s %q, want %s with %q", status, message, c.status, c.message)
			}
		})
	}
}

// ready is an object of `kind` at generation 3 whose status has a Ready condition.
func ready(kind, status, reason, message string) string {
	return `
kind: ` + kind + `
metadata: {name: acme, generation: 3}
status:
  observedGeneration: 3
  conditions:
    - {type: Verified, status: "True", reason: IssuersResolved, message: ok}
    - {type: Ready, status: "` + status + `", reason: ` + reason + `, message: "` + message + `"}
`
}

func TestTenantHealth(t *testing.T) {
	check(t, "Tenant", []tc{
		{"new", "kind: Tenant\nmetadata: {name: acme, generation: 1}\n", "Progressing", "Waiting for the operator"},
		{"spec changed", "kind: Tenant\nmetadata: {name: acme, generation: 4}\nstatus:\n  observedGeneration: 3\n  conditions: [{type: Ready, status: \"True\", reason: Provisioned, message: ok}]\n", "Progressing", "latest spec"},
		{"provisioned", ready("Tenant", "True", "Provisioned", "the tenant's database role, rows and Secrets are in place"), "Healthy", "rows and Secrets are in place"},
		{"namespace on its way", ready("Tenant", "False", "NamespaceNotFound", "namespaces not found: acme-prod"), "Progressing", "acme-prod"},
		{"namespace of another tenant", ready("Tenant", "False", "NamespaceClaimedByOtherTenant", "not claimed: shared (claimed by globex)"), "Degraded", "globex"},
		{"database down", ready("Tenant", "False", "DatabaseUnavailable", "the database is unreachable"), "Degraded", "unreachable"},
		{"invalid", ready("Tenant", "False", "InvalidSpec", "spec.models: llama has no price"), "Degraded", "no price"},
		{"deletion blocked", ready("Tenant", "False", "DeletionBlocked", "cannot finish deleting: role in use"), "Degraded", "cannot finish deleting"},
	})
}

func TestToolServerHealth(t *testing.T) {
	check(t, "ToolServer", []tc{
		{"new", "kind: ToolServer\nmetadata: {name: docs, generation: 1}\n", "Progressing", "Waiting for the operator"},
		{"available", ready("ToolServer", "True", "Available", "2/2 replicas ready"), "Healthy", "2/2 replicas ready"},
		{"rolling out", ready("ToolServer", "False", "Progressing", "1/2 replicas ready, 1 up to date"), "Progressing", "1 up to date"},
		{"tenant not ready", ready("ToolServer", "False", "TenantNotReady", "Tenant acme is not Ready"), "Progressing", "Tenant acme"},
		{"scaled to zero", ready("ToolServer", "False", "ScaledToZero", "spec.replicas is 0"), "Suspended", "spec.replicas is 0"},
		{"secret missing", ready("ToolServer", "False", "SecretNotFound", "Secret llm-key with key api-key not found"), "Degraded", "llm-key"},
		{"conflict", ready("ToolServer", "False", "ChildConflict", "Service docs exists and is not owned by this ToolServer"), "Degraded", "not owned"},
	})
}

func TestAgentTaskHealth(t *testing.T) {
	task := func(state, message string) string {
		return "kind: AgentTask\nmetadata: {name: ask, generation: 1}\nstatus:\n  state: " + state + "\n  message: \"" + message + "\"\n"
	}
	check(t, "AgentTask", []tc{
		{"new", "kind: AgentTask\nmetadata: {name: ask, generation: 1}\n", "Progressing", "Waiting to be submitted"},
		{"tool server missing", "kind: AgentTask\nmetadata: {name: ask}\nstatus:\n  conditions: [{type: Accepted, status: \"False\", reason: ToolServerNotFound, message: ToolServer docs not found}]\n", "Progressing", "ToolServer docs not found"},
		{"submitted", task("submitted", "Task accepted"), "Progressing", "Task accepted"},
		{"working", task("working", "Searching the documents"), "Progressing", "Searching"},
		{"completed", task("completed", "Answered with 2 citation(s)"), "Healthy", "Answered"},
		{"failed", task("failed", "The runtime replica running this task shut down"), "Degraded", "shut down"},
		{"rejected", task("rejected", "model m2 is not allowed"), "Degraded", "not allowed"},
		{"canceled", task("canceled", "canceled: timeout"), "Degraded", "timeout"},
		{"input required", task("input-required", "Which contract?"), "Suspended", "Which contract?"},
		{"state without message", "kind: AgentTask\nmetadata: {name: ask}\nstatus: {state: working}\n", "Progressing", "The task is working"},
	})
}

// Every key is a health check of a kind the operator serves, named as Argo CD looks it up.
func TestEveryScriptIsForAPaddockKind(t *testing.T) {
	for key := range scripts(t) {
		kind, ok := strings.CutPrefix(key, "resource.customizations.health.paddock.dev_")
		if !ok || (kind != "Tenant" && kind != "ToolServer" && kind != "AgentTask") {
			t.Errorf("unexpected key %q", key)
		}
	}
}
