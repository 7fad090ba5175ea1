package lapse_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCoreDependencies keeps the core free of I/O frameworks: the access
// core, policy, broker, expiry, reconcile, monitor and report import neither
// net/http nor database/sql, nor anything outside this module but the
// standard library.
func TestCoreDependencies(t *testing.T) {
	const module = "github.com/lapse-access/lapse"
	for _, pkg := range []string{module, module + "/policy", module + "/broker", module + "/expiry", module + "/reconcile", module + "/monitor", module + "/report"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			first, _, _ := strings.Cut(dep, "/")
			switch {
			case dep == "net/http" || dep == "database/sql":
				t.Errorf("%s imports %s", pkg, dep)
			case pkg == module+"/policy" && policyDep(dep):
			case strings.Contains(first, ".") && dep != module && !strings.HasPrefix(dep, module+"/"):
				t.Errorf("%s imports %s, outside the module", pkg, dep)
			}
		}
	}
}

// policyDep reports whether dep is one of the modules policy may import.
func policyDep(dep string) bool {
	for _, m := range []string{"github.com/cedar-policy/cedar-go", "github.com/go-json-experiment/json", "golang.org/x/exp", "go.yaml.in/yaml/v3"} {
		if dep == m || strings.HasPrefix(dep, m+"/") {
			return true
		}
	}
	return false
}
