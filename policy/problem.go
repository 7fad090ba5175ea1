package policy

import (
	"fmt"
	"strings"

	"github.com/lapse-access/lapse"
)

// Problem is one reason a policy set was refused.
type Problem struct {
	File   string
	Line   int
	Column int
	// Policy is the id of the policy at fault, if known.
	Policy  string
	Message string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Column > 0 {
			fmt.Fprintf(&b, ":%d", p.Column)
		}
	}
	b.WriteString(": ")
	if p.Policy != "" {
		fmt.Fprintf(&b, "policy %s: ", p.Policy)
	}
	b.WriteString(p.Message)
	return b.String()
}

// LoadError lists every problem found in a policy set. It unwraps to
// [lapse.ErrInvalid].
type LoadError struct {
	Problems []Problem
}

func (e *LoadError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return fmt.Sprintf("%d policy problem(s):\n%s", len(e.Problems), strings.Join(lines, "\n"))
}

// Unwrap returns [lapse.ErrInvalid].
func (e *LoadError) Unwrap() error { return lapse.ErrInvalid }
