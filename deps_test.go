package lapse_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCoreDependencies keeps the core free of I/O frameworks: the access
// core, policy, broker, expiry, reconcile and monitor import neither
// net/http nor database/sql, nor anything outside this module but the
// standard library.
func TestCoreDependencies(t *testing.T) {
	const module = "github.com/lapse-access/lapse"
	for _, pkg := range []string{module, module + "/policy", module + "/broker", module + "/expiry", module + "/reconcile", module + "/monitor"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			first, _, _ := strings.Cut(dep, "/")
			switch {
			case dep == "net/http" || dep == "database/sql":
				t.Errorf("%s imports %s", pkg, dep)
			case strings.Contains(first, ".") && dep != module && !strings.HasPrefix(dep, module+"/"):
				t.Errorf("%s imports %s, outside the module", pkg, dep)
			}
		}
	}
}
